{#- Level meters (contract v1.2 section 3): time_weighted_sum and running_total. Each event's
    value is a signed change of a level that holds from the event's instant on and carries over
    from period to period. The engine-specific parts (epoch microseconds, a series of months, the
    exact quotient) are dispatched: everything else in the models is portable SQL. -#}

{#- The run's one instant (var `run_instant`, or else METERLINE_RUN_INSTANT read while executing,
    as billing_period() reads its period; an ISO-8601 instant with offset, microseconds), as
    TIMESTAMP WITH TIME ZONE: a month not yet over accrues level usage up to it. -#}
{% macro run_instant() %}
    {%- set raw_value = var('run_instant', none) -%}
    {%- if (raw_value is none or (raw_value | string | trim) == '') and execute -%}
        {%- set raw_value = env_var('METERLINE_RUN_INSTANT', '') -%}
    {%- endif -%}
    {%- if raw_value is none or (raw_value | string | trim) == '' -%}
        {%- if execute -%}
            {{ exceptions.raise_compiler_error(
                "Model " ~ model.name ~ " needs the run's instant (what a month-to-date level "
                ~ "meter accrues up to): pass it with --vars "
                ~ "'{run_instant: 2026-03-15T12:00:00.000000+00:00}' or METERLINE_RUN_INSTANT") }}
        {%- endif -%}
        {{ return("cast('1970-01-01 00:00:00+00:00' as " ~ dbt.type_timestamp() ~ ")") }}
    {%- endif -%}
    {%- set value = raw_value | string | trim -%}
    {%- if not modules.re.match('^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,6})?(Z|[+-][0-9]{2}:[0-9]{2})$', value) -%}
        {{ exceptions.raise_compiler_error(
            "var run_instant must be an ISO-8601 instant with an offset, e.g. "
            ~ "2026-03-15T12:00:00.000000+00:00, got '" ~ value ~ "'") }}
    {%- endif -%}
    {{ return(instant_literal(value)) }}
{% endmacro %}

{% macro instant_literal(text) %}
    {{- return(adapter.dispatch('instant_literal', 'meterline')(text)) -}}
{% endmacro %}

{% macro default__instant_literal(text) -%}
    to_timestamp('{{ text }}')
{%- endmacro %}

{% macro duckdb__instant_literal(text) -%}
    cast('{{ text }}' as timestamp with time zone)
{%- endmacro %}

{% macro spark__instant_literal(text) -%}
    cast('{{ text }}' as timestamp)
{%- endmacro %}

{#- Microseconds since the Unix epoch of an instant (TIMESTAMP WITH TIME ZONE), a BIGINT. -#}
{% macro epoch_microseconds(instant) %}
    {{- return(adapter.dispatch('epoch_microseconds', 'meterline')(instant)) -}}
{% endmacro %}

{% macro default__epoch_microseconds(instant) -%}
    unix_micros({{ instant }})
{%- endmacro %}

{% macro duckdb__epoch_microseconds(instant) -%}
    epoch_us({{ instant }})
{%- endmacro %}

{#- Microseconds since the epoch of a DATE's first instant in UTC, whatever the session zone. -#}
{% macro utc_date_microseconds(day) %}
    {{- return(adapter.dispatch('utc_date_microseconds', 'meterline')(day)) -}}
{% endmacro %}

{% macro default__utc_date_microseconds(day) -%}
    unix_micros(to_utc_timestamp(cast({{ day }} as timestamp), 'UTC'))
{%- endmacro %}

{% macro duckdb__utc_date_microseconds(day) -%}
    epoch_us(cast({{ day }} as timestamp))
{%- endmacro %}

{#- Spark: whole days since the epoch, a date being a UTC day here. -#}
{% macro spark__utc_date_microseconds(day) -%}
    (cast(unix_date({{ day }}) as bigint) * 86400000000)
{%- endmacro %}

{#- What the billed period's usage accrues up to (contract v1.2 section 3), as TIMESTAMP WITH
    TIME ZONE: the period's end once it is over, else the run's instant (never before its start). -#}
{% macro billed_period_accrued_to() -%}
    {%- set start_us = utc_date_microseconds(billing_period_start()) -%}
    {%- set end_us = utc_date_microseconds(billing_period_end()) -%}
    {%- set run_us = epoch_microseconds(run_instant()) -%}
    {{ instant_from_microseconds(
        "case when " ~ run_us ~ " >= " ~ end_us ~ " then " ~ end_us
        ~ " when " ~ run_us ~ " <= " ~ start_us ~ " then " ~ start_us
        ~ " else " ~ run_us ~ " end") }}
{%- endmacro %}

{#- The instant of epoch microseconds, as TIMESTAMP WITH TIME ZONE. -#}
{% macro instant_from_microseconds(microseconds) %}
    {{- return(adapter.dispatch('instant_from_microseconds', 'meterline')(microseconds)) -}}
{% endmacro %}

{% macro default__instant_from_microseconds(microseconds) -%}
    timestamp_micros({{ microseconds }})
{%- endmacro %}

{% macro duckdb__instant_from_microseconds(microseconds) -%}
    make_timestamptz({{ microseconds }})
{%- endmacro %}

{#- A relation of one DATE column `month_start`: the first day of every month from `first_month`
    to `last_month` (DATE expressions, first days of months), both included. -#}
{% macro month_series(first_month, last_month) %}
    {{- return(adapter.dispatch('month_series', 'meterline')(first_month, last_month)) -}}
{% endmacro %}

{% macro default__month_series(first_month, last_month) -%}
    select explode(sequence({{ first_month }}, {{ last_month }}, interval 1 month)) as month_start
{%- endmacro %}

{% macro duckdb__month_series(first_month, last_month) -%}
    select cast(generate_series as date) as month_start
    from generate_series(cast({{ first_month }} as timestamp), cast({{ last_month }} as timestamp),
                         interval 1 month)
{%- endmacro %}

{#- `numerator` (an exact DECIMAL(38,12)) divided by `divisor` (a positive BIGINT), exact, then
    rounded once to 12 decimal places, half away from zero, as DECIMAL(38,12). A decimal
    division would go through a float in some engines: this is integer arithmetic on the
    numerator's unscaled value. -#}
{% macro quotient_rounded_12(numerator, divisor) %}
    {{- return(adapter.dispatch('quotient_rounded_12', 'meterline')(numerator, divisor)) -}}
{% endmacro %}

{% macro default__quotient_rounded_12(numerator, divisor) -%}
    cast(round(cast({{ numerator }} as decimal(38, 12)) / cast({{ divisor }} as decimal(38, 0)), 12)
         as {{ quantity_type() }})
{%- endmacro %}

{% macro duckdb__quotient_rounded_12(numerator, divisor) -%}
    {%- set unscaled = "cast(replace(cast(cast(" ~ numerator ~ " as decimal(38, 12)) as varchar), '.', '') as hugeint)" -%}
    {%- set magnitude = "abs(" ~ unscaled ~ ")" -%}
    {%- set d = "cast(" ~ divisor ~ " as hugeint)" -%}
    {%- set rounded = "(" ~ magnitude ~ " // " ~ d ~ " + case when 2 * (" ~ magnitude ~ " % " ~ d ~ ") >= " ~ d ~ " then 1 else 0 end)" -%}
    (cast(case when {{ unscaled }} < 0 then -{{ rounded }} else {{ rounded }} end as decimal(38, 0))
        * cast('0.000000000001' as decimal(38, 12)))
{%- endmacro %}

{#- Spark: `div` and `%` on decimals are exact (BigDecimal), a decimal `/` is not (it is rounded
    to the result type's scale). For |N| = I + F (I whole, 0 <= F < 1) and divisor d > 0:
    q = I div d, r = I % d; the 12 decimals are round((r + F) * 10^12 / d), which is again a
    `div` and a `%` of whole numbers below 10^25. The whole part must stay below 2^63 (an ANSI
    error otherwise, never a silent value). -#}
{% macro spark__quotient_rounded_12(numerator, divisor) -%}
    {%- set n = "abs(cast(" ~ numerator ~ " as decimal(38, 12)))" -%}
    {%- set d = "cast(" ~ divisor ~ " as decimal(19, 0))" -%}
    {%- set whole = "cast(floor(" ~ n ~ ") as decimal(38, 0))" -%}
    {%- set scaled = "cast((" ~ whole ~ " % " ~ d ~ ") * 1000000000000 + (" ~ n ~ " - " ~ whole ~ ") * 1000000000000 as decimal(38, 0))" -%}
    {%- set decimals = "((" ~ scaled ~ ") div " ~ d ~ " + case when 2 * ((" ~ scaled ~ ") % " ~ d ~ ") >= " ~ d ~ " then 1 else 0 end)" -%}
    {%- set magnitude = "(cast(" ~ whole ~ " div " ~ d ~ " as decimal(38, 12)) + cast(" ~ decimals ~ " as decimal(38, 0)) * cast('0.000000000001' as decimal(38, 12)))" -%}
    cast(case when cast({{ numerator }} as decimal(38, 12)) < 0 then -{{ magnitude }} else {{ magnitude }} end
        as {{ quantity_type() }})
{%- endmacro %}
