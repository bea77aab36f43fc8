{#- The period a run bills, 'YYYY-MM-01' (a calendar month in UTC): var `billing_period`, or,
    when it is not given, the environment variable METERLINE_BILLING_PERIOD, read only while
    executing. Meterline's billing step sets the variable (orchestration/billing/assets.py): a
    `--vars` that changes from run to run makes dbt parse the whole project again (partial
    parsing is dropped when the vars change), and an env_var read while parsing would make
    dbt re-parse every file using it. Read at execution, it changes nothing dbt parsed. -#}
{% macro billing_period() %}
    {%- set raw_value = var('billing_period', none) -%}
    {%- if (raw_value is none or (raw_value | string | trim) == '') and execute -%}
        {%- set raw_value = env_var('METERLINE_BILLING_PERIOD', '') -%}
    {%- endif -%}
    {%- if raw_value is none or (raw_value | string | trim) == '' -%}
        {%- if execute -%}
            {{ exceptions.raise_compiler_error(
                "Model " ~ model.name ~ " bills one period: pass it with "
                ~ "--vars '{billing_period: YYYY-MM-01}' (the first day of the month, UTC) or "
                ~ "the environment variable METERLINE_BILLING_PERIOD.") }}
        {%- endif -%}
        {#- Parsing (dbt parse, manifest builds) needs no period: any valid date will do. -#}
        {{ return('1970-01-01') }}
    {%- endif -%}
    {%- set value = raw_value | string | trim -%}
    {%- if not modules.re.match('^[0-9]{4}-(0[1-9]|1[0-2])-01$', value) -%}
        {{ exceptions.raise_compiler_error(
            "var billing_period must be the first day of a month as 'YYYY-MM-01', got '" ~ value ~ "'") }}
    {%- endif -%}
    {{ return(value) }}
{% endmacro %}

{#- Next month's first day as 'YYYY-MM-01' (the exclusive end of the billed period). -#}
{% macro billing_period_end_value() %}
    {%- set parts = billing_period().split('-') -%}
    {%- set year = parts[0] | int -%}
    {%- set month = parts[1] | int -%}
    {%- if month == 12 -%}
        {{ return('%04d-01-01' % (year + 1)) }}
    {%- endif -%}
    {{ return('%04d-%02d-01' % (year, month + 1)) }}
{% endmacro %}

{% macro billing_period_start() -%}
    cast('{{ billing_period() }}' as date)
{%- endmacro %}

{% macro billing_period_end() -%}
    cast('{{ billing_period_end_value() }}' as date)
{%- endmacro %}

{#- `INV-YYYYMM-<customer_id>` for the billed period (contract section 5). -#}
{% macro invoice_id(customer_id) -%}
    'INV-{{ billing_period()[0:4] }}{{ billing_period()[5:7] }}-' || {{ customer_id }}
{%- endmacro %}

{#- pre_hook of period-scoped incremental models: a run replaces exactly the billed period's rows
    (delete, then the model's append inserts them again), so rerunning a period changes nothing
    and other periods are never touched. -#}
{% macro delete_billing_period_rows() %}
    {%- if is_incremental() -%}
        {{ adapter.dispatch('delete_billing_period_rows', 'meterline')() }}
    {%- endif -%}
{% endmacro %}

{% macro default__delete_billing_period_rows() -%}
    delete from {{ this }} where billing_period_start = {{ billing_period_start() }}
{%- endmacro %}

{#- Spark's Parquet tables have no DELETE: the period is a partition (dbt_project.yml), and the
    model's insert_overwrite replaces it. Drop it first: an overwrite whose query returns no
    rows would leave the old partition in place. -#}
{% macro spark__delete_billing_period_rows() -%}
    alter table {{ this }} drop if exists partition (billing_period_start = date'{{ billing_period() }}')
{%- endmacro %}

{#- dbt's get_where_subquery, and one substitution: `__billing_period__` in a test's `where`
    config becomes the billed period while executing. A test's configs are rendered when dbt
    parses the project, so `{{ billing_period() }}` written there would keep the period of the
    last full parse; the placeholder is resolved for every run. Portable: plain Jinja. -#}
{% macro get_where_subquery(relation) -%}
    {%- set where = config.get('where', '') -%}
    {%- if where -%}
        {%- if '__billing_period__' in where -%}
            {%- set where = where | replace('__billing_period__', billing_period()) -%}
        {%- endif -%}
        {%- set filtered -%}
            (select * from {{ relation }} where {{ where }}) dbt_subquery
        {%- endset -%}
        {% do return(filtered) %}
    {%- else -%}
        {% do return(relation) %}
    {%- endif -%}
{%- endmacro %}
