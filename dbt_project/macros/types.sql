{#- The column types of the warehouse, one home each (contract section 5), dispatched so that a
    second engine adds a variant instead of forking the models: `cast(x as {{ quantity_type() }})`.
    The default__ variants are DuckDB's (and PostgreSQL's) names. -#}

{#- Exact values: quantities and event values, and the price book's prices, fees, package sizes,
    free units, tier bounds and commitment minimums (12 decimals). -#}
{% macro quantity_type() %}
    {{- return(adapter.dispatch('quantity_type', 'meterline')()) -}}
{% endmacro %}

{% macro default__quantity_type() -%}
    decimal(38, 12)
{%- endmacro %}

{#- Money rounded to a currency's minor unit: line amounts and invoice totals (4 decimals, the
    largest ISO 4217 minor unit). -#}
{% macro money_type() %}
    {{- return(adapter.dispatch('money_type', 'meterline')()) -}}
{% endmacro %}

{% macro default__money_type() -%}
    decimal(38, 4)
{%- endmacro %}

{#- A line amount before rounding: the exact product of two quantity_type() values (24 decimals). -#}
{% macro exact_amount_type() %}
    {{- return(adapter.dispatch('exact_amount_type', 'meterline')()) -}}
{% endmacro %}

{% macro default__exact_amount_type() -%}
    decimal(38, 24)
{%- endmacro %}

{#- A whole number as an exact decimal: package counts, and factors rounded to whole units. -#}
{% macro whole_decimal_type() %}
    {{- return(adapter.dispatch('whole_decimal_type', 'meterline')()) -}}
{% endmacro %}

{% macro default__whole_decimal_type() -%}
    decimal(38, 0)
{%- endmacro %}

{#- Text: ids, names, descriptions. -#}
{% macro text_type() %}
    {{- return(adapter.dispatch('text_type', 'meterline')()) -}}
{% endmacro %}

{% macro default__text_type() -%}
    varchar
{%- endmacro %}

{% macro spark__text_type() -%}
    string
{%- endmacro %}

{#- An instant (contract section 4: compared in UTC). -#}
{% macro timestamp_tz_type() %}
    {{- return(adapter.dispatch('timestamp_tz_type', 'meterline')()) -}}
{% endmacro %}

{% macro default__timestamp_tz_type() -%}
    timestamp with time zone
{%- endmacro %}

{#- Spark's TIMESTAMP is an instant (TIMESTAMP_LTZ), shown in the session's zone (UTC). -#}
{% macro spark__timestamp_tz_type() -%}
    timestamp
{%- endmacro %}
