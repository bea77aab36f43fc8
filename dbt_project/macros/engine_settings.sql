{#- The engine's memory limit, threads and spill directory for this run, as Meterline resolved
    them (METERLINE_MEMORY_LIMIT, METERLINE_THREADS, METERLINE_TEMP_DIR; docs/operations.md).
    `meterline bill` passes the resolved values as METERLINE_DUCKDB_* variables; a dbt command
    run by hand without them keeps the engine's defaults. An on-run-start hook. -#}
{% macro apply_engine_settings() %}
    {{- return(adapter.dispatch('apply_engine_settings', 'meterline')()) -}}
{% endmacro %}

{% macro default__apply_engine_settings() -%}
    select 1
{%- endmacro %}

{% macro duckdb__apply_engine_settings() -%}
    {%- set settings = [
        ('memory_limit', env_var('METERLINE_DUCKDB_MEMORY_LIMIT', '')),
        ('threads', env_var('METERLINE_DUCKDB_THREADS', '')),
        ('temp_directory', env_var('METERLINE_DUCKDB_TEMP_DIRECTORY', '')),
    ] -%}
    {%- if execute -%}
        {%- for name, value in settings if value -%}
            {%- do run_query("set " ~ name ~ " = '" ~ value | replace("'", "''") ~ "'") -%}
        {%- endfor -%}
    {%- endif -%}
    select 1
{%- endmacro %}
