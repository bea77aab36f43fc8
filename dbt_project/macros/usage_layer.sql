{#- The incremental usage layer (docs/architecture.md, "The usage layer"). Every model of
    models/intermediate/usage/ that reads events adds only the events landed since it was last
    built: raw.usage_events is append-only and landing_seq grows with each landing (one writer at
    a time), so "landed since" is `landing_seq` above the highest the model holds. Its rows keep
    the catalog fingerprint they were built with (int_usage_catalog_fingerprint): a change of the
    meters or of the items' filters, or a table of an older layout, rebuilds the model from every
    landed event in the same transaction. A first build, a unit test or `--full-refresh` reads
    every event. -#}

{#- The materialization of the layer's models: incremental, or a table rebuilt from every event
    on engines whose tables have no DELETE (Spark's Parquet tables): the same rows either way. -#}
{% macro usage_layer_materialization() -%}
    {{- return(adapter.dispatch('usage_layer_materialization', 'meterline')()) -}}
{%- endmacro %}

{% macro default__usage_layer_materialization() -%}
    {{- return('incremental') -}}
{%- endmacro %}

{% macro spark__usage_layer_materialization() -%}
    {{- return('table') -}}
{%- endmacro %}

{#- The catalog fingerprint the layer is built with, as a scalar subquery. -#}
{% macro usage_catalog_fingerprint() -%}
    (select catalog_fingerprint from {{ ref('int_usage_catalog_fingerprint') }})
{%- endmacro %}

{#- True when this run of the model adds the newly landed events to the rows it holds; false
    when it builds from every event (a first build, a full refresh, a unit test, a table without
    the layer's columns, or rows built with another catalog). Rendered at execution time, when
    the fingerprint model is already built. -#}
{% macro usage_layer_adds(held_column='through_landing_seq') -%}
    {#- a unit test has no `this`: it builds from its given rows -#}
    {%- if not execute or this is none or not is_incremental() -%}
        {{- return(false) -}}
    {%- endif -%}
    {%- set columns = adapter.get_columns_in_relation(this) | map(attribute='name') | map('lower') | list -%}
    {%- if 'catalog_fingerprint' not in columns or held_column not in columns -%}
        {{- return(false) -}}
    {%- endif -%}
    {%- set held = run_query('select catalog_fingerprint from ' ~ this ~ ' limit 1') -%}
    {%- if held.rows | length == 0 -%}
        {{- return(false) -}}
    {%- endif -%}
    {%- set current = run_query('select catalog_fingerprint from ' ~ ref('int_usage_catalog_fingerprint')) -%}
    {{- return(held.rows[0][0] == current.rows[0][0]) -}}
{%- endmacro %}

{#- pre_hook of the layer's models: on an incremental run that cannot add (see
    usage_layer_adds), delete every row so the build from every event replaces them; on one that
    adds, delete the rows `also_replace` names (a SQL condition: rows the run recomputes whole,
    e.g. the level rows). Inside the model's transaction. -#}
{% macro usage_layer_reset(also_replace=none, held_column='through_landing_seq') -%}
    {%- if this is not none and is_incremental() -%}
        {%- if not usage_layer_adds(held_column) -%}
            delete from {{ this }}
        {%- elif also_replace is not none -%}
            delete from {{ this }} where {{ also_replace }}
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}

{#- The condition on an events relation's `landing_seq` that keeps the events this run adds:
    those above the highest `held_column` the model holds (every event when it builds from
    every event). -#}
{% macro landed_since_last_build(landing_seq='landing_seq', held_column='through_landing_seq') -%}
    {%- if usage_layer_adds(held_column) -%}
        {{ landing_seq }} > (select coalesce(max({{ held_column }}), -1) from {{ this }})
    {%- else -%}
        1 = 1
    {%- endif -%}
{%- endmacro %}

{#- One text fingerprint of the rows of a relation's `line` column, whatever their order. -#}
{% macro lines_fingerprint(line) %}
    {{- return(adapter.dispatch('lines_fingerprint', 'meterline')(line)) -}}
{% endmacro %}

{% macro default__lines_fingerprint(line) -%}
    md5(concat_ws('\n', array_sort(collect_list({{ line }}))))
{%- endmacro %}

{% macro duckdb__lines_fingerprint(line) -%}
    md5(coalesce(string_agg({{ line }}, chr(10) order by {{ line }}), ''))
{%- endmacro %}
