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
