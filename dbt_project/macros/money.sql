{#- THE rounding of Meterline (contract section 4): an exact amount rounded once, half away from
    zero, to the currency's ISO 4217 minor unit (a column: 0, 2, 3 or 4), as DECIMAL(38,4).
    `round` on an exact DECIMAL rounds half away from zero (5.5025 -> 5.503, -2.5 -> -3); the
    precision must be a constant, hence the CASE over the minor units ISO 4217 uses, each branch
    cast on its own: DuckDB gives a CASE over round(x, 0) and round(x, 3) the type DECIMAL(38,0). -#}
{% macro round_to_minor_unit(amount, minor_unit) -%}
    case {{ minor_unit }}
        {%- for digits in [0, 1, 2, 3, 4] %}
        when {{ digits }} then cast(round({{ amount }}, {{ digits }}) as {{ money_type() }})
        {%- endfor %}
    end
{%- endmacro %}

{#- The exact amount of a line, `units * unit_price + flat_fee`, as DECIMAL(38,24): the exact
    product of two DECIMAL(38,12) values has 24 decimals, which leaves 14 integer digits. Lines of
    10^13 or more stop billing with `overflow_message` (a SQL text expression naming the customer
    and item) instead of an engine overflow or a silent binary floating-point value.
    Inputs are >= 0 (quantities after max(Q, 0), prices and fees >= 0). The guard never overflows:
      1. both factors >= 10^7, or one >= 10^19 and the other >= 10^-5: the product is >= 10^14;
      2. otherwise round(larger factor, 0) * smaller factor fits DECIMAL(38,12) and is within
         0.5 * 10^7 of the product: below 10^13 means the exact product fits. -#}
{% macro exact_line_amount(units, unit_price, flat_fee, overflow_message) -%}
    {%- set limit = "cast(10000000000000 as " ~ quantity_type() ~ ")" -%}
    {%- set error = raise_billing_error(overflow_message ~ " || ': the line amount would be 10^13 or more'") -%}
    case
        when {{ units }} >= cast(10000000 as {{ quantity_type() }}) and {{ unit_price }} >= cast(10000000 as {{ quantity_type() }})
            then {{ error }}
        when ({{ units }} >= cast(10000000000000000000 as {{ quantity_type() }}) and {{ unit_price }} >= cast(0.00001 as {{ quantity_type() }}))
            or ({{ unit_price }} >= cast(10000000000000000000 as {{ quantity_type() }}) and {{ units }} >= cast(0.00001 as {{ quantity_type() }}))
            then {{ error }}
        when {{ flat_fee }} >= {{ limit }}
            then {{ error }}
        when case
                when {{ units }} >= {{ unit_price }}
                    then cast({{ units }} as {{ whole_decimal_type() }}) * cast({{ unit_price }} as {{ quantity_type() }})
                else cast({{ unit_price }} as {{ whole_decimal_type() }}) * cast({{ units }} as {{ quantity_type() }})
            end >= {{ limit }}
            then {{ error }}
        else cast({{ units }} as {{ quantity_type() }}) * cast({{ unit_price }} as {{ quantity_type() }})
            + cast({{ flat_fee }} as {{ exact_amount_type() }})
    end
{%- endmacro %}

{#- ceil(numerator / denominator) exactly, for numerator >= 0 and denominator > 0 (package
    counts), as DECIMAL(38,0). -#}
{% macro ceil_divide_exact(numerator, denominator, overflow_message) %}
    {{- return(adapter.dispatch('ceil_divide_exact', 'meterline')(numerator, denominator, overflow_message)) -}}
{% endmacro %}

{#- Engines whose DECIMAL division is exact (PostgreSQL NUMERIC). -#}
{% macro default__ceil_divide_exact(numerator, denominator, overflow_message) -%}
    cast(ceil({{ numerator }} / {{ denominator }}) as {{ whole_decimal_type() }})
{%- endmacro %}

{#- DuckDB divides DECIMALs in binary floating point: ceil(100000.000000000001 / 100) gives 1000.
    Take that quotient only as an estimate e (within 1 of the exact ceil below 10^15) and
    pick the least n of e - 1, e, e + 1 with n * denominator >= numerator, compared exactly. -#}
{% macro duckdb__ceil_divide_exact(numerator, denominator, overflow_message) -%}
    {%- set estimate = "cast(ceil((" ~ numerator ~ ") / (" ~ denominator ~ ")) as " ~ whole_decimal_type() ~ ")" -%}
    case
        when ({{ numerator }}) / ({{ denominator }}) >= 1000000000000000
            then {{ raise_billing_error(overflow_message ~ " || ': 10^15 packages or more'") }}
        when ({{ estimate }} - 1) * ({{ denominator }}) >= {{ numerator }} then {{ estimate }} - 1
        when {{ estimate }} * ({{ denominator }}) >= {{ numerator }} then {{ estimate }}
        else {{ estimate }} + 1
    end
{%- endmacro %}

{#- Spark: `div` (the whole quotient) and `%` are exact on decimals, a decimal `/` is not. -#}
{% macro spark__ceil_divide_exact(numerator, denominator, overflow_message) -%}
    case
        when ({{ numerator }}) div ({{ denominator }}) >= 1000000000000000
            then {{ raise_billing_error(overflow_message ~ " || ': 10^15 packages or more'") }}
        else cast(({{ numerator }}) div ({{ denominator }}) as {{ whole_decimal_type() }})
            + case when ({{ numerator }}) % ({{ denominator }}) > 0 then 1 else 0 end
    end
{%- endmacro %}
