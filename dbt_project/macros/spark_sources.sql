{#- METERLINE_ENGINE=spark (orchestration/lib/spark.py, docs/spark.md): how the models' sources
    reach Spark and how what Spark built goes back to the DuckDB warehouse. Both are no-ops on
    other engines. -#}

{#- on-run-start: every dbt source table as an external Parquet table over the files Meterline
    exported from DuckDB for this run (METERLINE_SPARK_SOURCES/<schema>/<table>/), created
    again on every run so its schema is always the files'. -#}
{% macro register_engine_sources() %}
    {{- return(adapter.dispatch('register_engine_sources', 'meterline')()) -}}
{% endmacro %}

{% macro default__register_engine_sources() -%}
    select 1
{%- endmacro %}

{% macro spark__register_engine_sources() -%}
    {%- set root = env_var('METERLINE_SPARK_SOURCES', '') -%}
    {%- if execute and root -%}
        {%- for source in graph.sources.values() -%}
            {%- set relation = source.schema ~ '.' ~ source.identifier -%}
            {%- do run_query('create schema if not exists ' ~ source.schema) -%}
            {%- do run_query('drop table if exists ' ~ relation) -%}
            {%- do run_query('create table ' ~ relation ~ " using parquet location '"
                ~ root ~ '/' ~ source.schema ~ '/' ~ source.identifier ~ "'") -%}
        {%- endfor -%}
    {%- endif -%}
    select 1
{%- endmacro %}

{#- on-run-end: every table (model or seed) this run built, written as Parquet for Meterline to
    load into DuckDB (orchestration/lib/spark.py, import_marts): a table rebuilt whole to
    METERLINE_SPARK_EXPORT/tables/<schema>/<table>/; a period-scoped one (partitioned by
    billing_period_start) only with the billed period's rows, to .../periods/<schema>/<table>/,
    so that DuckDB's other months, whichever engine billed them, are never touched. -#}
{% macro export_engine_marts(results) %}
    {{- return(adapter.dispatch('export_engine_marts', 'meterline')(results)) -}}
{% endmacro %}

{% macro default__export_engine_marts(results) -%}
    select 1
{%- endmacro %}

{% macro spark__export_engine_marts(results) -%}
    {%- set root = env_var('METERLINE_SPARK_EXPORT', '') -%}
    {%- if execute and root -%}
        {%- for result in results
              if result.node.resource_type in ('model', 'seed') and result.status == 'success'
                 and result.node.config.materialized != 'view' -%}
            {%- set node = result.node -%}
            {%- set relation = node.schema ~ '.' ~ node.alias -%}
            {%- if node.config.get('partition_by') -%}
                {%- set query = 'select * from ' ~ relation ~ ' where billing_period_start = '
                    ~ billing_period_start() -%}
                {%- set folder = root ~ '/periods/' ~ node.schema ~ '/' ~ node.alias -%}
            {%- else -%}
                {%- set query = 'select * from ' ~ relation -%}
                {%- set folder = root ~ '/tables/' ~ node.schema ~ '/' ~ node.alias -%}
            {%- endif -%}
            {%- do run_query("insert overwrite directory '" ~ folder ~ "' using parquet " ~ query) -%}
        {%- endfor -%}
    {%- endif -%}
    select 1
{%- endmacro %}
