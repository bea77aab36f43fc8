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

{#- Spark: the object as a map of texts (a number's text is its JSON text); an absent key, or
    text that is not an object, gives NULL (try_element_at: no ANSI error). -#}
{% macro spark__json_extract_text(json_text, key) -%}
    try_element_at(from_json({{ json_text }}, 'map<string,string>'), {{ key }})
{%- endmacro %}
