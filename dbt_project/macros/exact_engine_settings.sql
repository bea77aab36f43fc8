{#- Exactness guard (docs/spark.md), an on-run-start hook: refuse to build on an engine whose
    settings would bill a cent wrong or hide an overflow. On Spark:
    - spark.sql.decimalOperations.allowPrecisionLoss must be false: otherwise a product or
      quotient of decimals is rounded to 6 places (1000 x 0.000004999999 bills 0.01, not 0.00);
    - spark.sql.ansi.enabled must be true: otherwise an overflow, or a failing cast, becomes NULL;
    - the session time zone must be UTC (assert_session_time_zone_is_utc checks it too).
    DuckDB's decimals are exact and its overflows are errors: nothing to check there. -#}
{% macro assert_exact_engine_settings() %}
    {{- return(adapter.dispatch('assert_exact_engine_settings', 'meterline')()) -}}
{% endmacro %}

{% macro default__assert_exact_engine_settings() -%}
    select 1
{%- endmacro %}

{% macro spark__assert_exact_engine_settings() -%}
    {%- if execute -%}
        {%- set required = [
            ('spark.sql.decimalOperations.allowPrecisionLoss', 'false',
             'decimal products and quotients would be rounded to 6 decimal places'),
            ('spark.sql.ansi.enabled', 'true',
             'an overflow or a failing cast would become NULL instead of an error'),
            ('spark.sql.session.timeZone', 'UTC', 'months would be bucketed in another zone'),
        ] -%}
        {%- set problems = [] -%}
        {%- for key, wanted, why in required -%}
            {%- set rows = run_query("set " ~ key).rows -%}
            {%- set value = (rows[0][1] if rows | length > 0 else '<unset>') | string -%}
            {%- if value | lower != wanted | lower -%}
                {%- do problems.append(key ~ " is '" ~ value ~ "', must be '" ~ wanted ~ "': " ~ why) -%}
            {%- endif -%}
        {%- endfor -%}
        {%- if problems -%}
            {{ exceptions.raise_compiler_error(
                "Refusing to bill on Spark with settings that are not exact:\n  - "
                ~ problems | join("\n  - ")
                ~ "\nSet them in the profile's server_side_parameters (docs/spark.md).") }}
        {%- endif -%}
    {%- endif -%}
    select 1
{%- endmacro %}
