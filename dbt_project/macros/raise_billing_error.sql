{#- Stop the build with `message` (a SQL text expression, so it can name the customer and item).
    Use inside a CASE branch: the engine evaluates it only for the rows that reach it. -#}
{% macro raise_billing_error(message) %}
    {{- return(adapter.dispatch('raise_billing_error', 'meterline')(message)) -}}
{% endmacro %}

{#- Engines without an error function: a failing cast carries the message into the error. -#}
{% macro default__raise_billing_error(message) -%}
    cast('billing error: ' || ({{ message }}) as integer)
{%- endmacro %}

{% macro duckdb__raise_billing_error(message) -%}
    error('billing error: ' || ({{ message }}))
{%- endmacro %}

{% macro spark__raise_billing_error(message) -%}
    raise_error('billing error: ' || ({{ message }}))
{%- endmacro %}
