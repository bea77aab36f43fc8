{#- Exact schema names (`staging`, `intermediate`, `marts`, `reference`): the contract names
    `marts.fct_invoices`, not dbt's default `<target schema>_marts`. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
