{#- First day of the UTC calendar month holding an instant (TIMESTAMP WITH TIME ZONE), as a DATE,
    whatever the session time zone. -#}
{% macro utc_month_start(instant) %}
    {{- return(adapter.dispatch('utc_month_start', 'meterline')(instant)) -}}
{% endmacro %}

{% macro default__utc_month_start(instant) -%}
    cast(date_trunc('month', ({{ instant }}) at time zone 'UTC') as date)
{%- endmacro %}

{% macro duckdb__utc_month_start(instant) -%}
    cast(date_trunc('month', timezone('UTC', {{ instant }})) as date)
{%- endmacro %}

{#- Spark: the session time zone is UTC (macros/exact_engine_settings.sql refuses others). -#}
{% macro spark__utc_month_start(instant) -%}
    cast(date_trunc('MONTH', {{ instant }}) as date)
{%- endmacro %}

{#- A DATE plus a whole number of months, as a DATE. -#}
{% macro add_months(date_expression, months) %}
    {{- return(adapter.dispatch('add_months', 'meterline')(date_expression, months)) -}}
{% endmacro %}

{% macro default__add_months(date_expression, months) -%}
    cast({{ dbt.dateadd('month', months, date_expression) }} as date)
{%- endmacro %}

{% macro duckdb__add_months(date_expression, months) -%}
    cast(({{ date_expression }}) + to_months({{ months }}) as date)
{%- endmacro %}

{% macro spark__add_months(date_expression, months) -%}
    add_months({{ date_expression }}, {{ months }})
{%- endmacro %}

{#- Whether a catalog row with an [effective_from, effective_to) range (rates, commitments) is in
    effect on a DATE: from effective_from, up to but not including effective_to (open when null).
    The one rule for dates in effect (contract section 3), as orchestration/catalog/model.py
    applies it in Python. `row` is the row's relation alias. -#}
{% macro in_effect_on(row, day) -%}
    {{ row }}.effective_from <= {{ day }}
    and ({{ row }}.effective_to is null or {{ row }}.effective_to > {{ day }})
{%- endmacro %}

{#- The UTC calendar day of an instant (TIMESTAMP WITH TIME ZONE), as a DATE, whatever the
    session time zone. -#}
{% macro utc_date(instant) %}
    {{- return(adapter.dispatch('utc_date', 'meterline')(instant)) -}}
{% endmacro %}

{% macro default__utc_date(instant) -%}
    cast(({{ instant }}) at time zone 'UTC' as date)
{%- endmacro %}

{% macro duckdb__utc_date(instant) -%}
    cast(timezone('UTC', {{ instant }}) as date)
{%- endmacro %}

{% macro spark__utc_date(instant) -%}
    to_date({{ instant }})
{%- endmacro %}
