{#- Contract section 4: every timestamp comparison is made in UTC, whatever the machine's zone.
    The profile sets TimeZone=UTC; this on-run-start guard refuses to build when it did not take. -#}
{% macro assert_session_time_zone_is_utc() %}
    {%- if execute -%}
        {%- set zone = run_query("select " ~ session_time_zone()).columns[0].values()[0] -%}
        {%- if zone not in ('UTC', 'Etc/UTC') -%}
            {{ exceptions.raise_compiler_error(
                "The warehouse session time zone is '" ~ zone ~ "', not UTC: months would be "
                ~ "bucketed in that zone. Set `settings: {TimeZone: UTC}` in the dbt profile.") }}
        {%- endif -%}
    {%- endif -%}
    select 1
{% endmacro %}

{% macro session_time_zone() %}
    {{- return(adapter.dispatch('session_time_zone', 'meterline')()) -}}
{% endmacro %}

{% macro default__session_time_zone() -%}
    current_setting('TimeZone')
{%- endmacro %}

{% macro duckdb__session_time_zone() -%}
    current_setting('TimeZone')
{%- endmacro %}

{% macro spark__session_time_zone() -%}
    current_timezone()
{%- endmacro %}
