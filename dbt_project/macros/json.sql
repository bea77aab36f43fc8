{#- The text value of one key of a JSON object held as text; NULL when the key is absent.
    `key` is a SQL expression (it may differ per row) and may hold any character. -#}
{% macro json_extract_text(json_text, key) %}
    {{- return(adapter.dispatch('json_extract_text', 'meterline')(json_text, key)) -}}
{% endmacro %}

{% macro default__json_extract_text(json_text, key) -%}
    (cast({{ json_text }} as json) ->> ({{ key }}))
{%- endmacro %}

{% macro duckdb__json_extract_text(json_text, key) -%}
    json_extract_string({{ json_text }}, '$."' || replace(replace({{ key }}, '\', '\\'), '"', '\"') || '"')
{%- endmacro %}
