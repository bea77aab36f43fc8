{#- The minimum commitment top-up of one invoice period (contract section 3), as DECIMAL(38,4):
    the commitment minus the usage subtotal (the sum of the period's ROUNDED usage lines), rounded
    once to the minor unit, when the subtotal is below the commitment; 0 otherwise. Used for the
    billed period's minimum_commitment line and for the top-up a re-bill of a published period
    would give now (its commitment true-up, section 8), so both are computed the same way. -#}
{% macro commitment_top_up(minimum_amount, usage_subtotal, minor_unit) -%}
    case
        when {{ minimum_amount }} > {{ usage_subtotal }}
            then {{ round_to_minor_unit(minimum_amount ~ ' - ' ~ usage_subtotal, minor_unit) }}
        else cast(0 as {{ money_type() }})
    end
{%- endmacro %}
