{#- Aggregate usage events with their meter's aggregation (contract section 3), one row per
    group, incrementally (macros/usage_layer.sql). `events` is a CTE with the group columns and
    `aggregation`, `value`, `unique_dimension_value`, `event_at`, `event_id`, `landing_seq`,
    already restricted to the events this run adds; `group_columns` must include the period.
    - sum, max: of `value`; count: the events;
    - unique_count: distinct `unique_dimension_value` (events without it count in event_count
      only), from int_usage_unique_values when adding to the rows held (a count of distinct
      values does not add up), restricted by `unique_values_filter` (`unique_values`: the
      model holding them, with the group columns);
    - latest: the value of the event with the greatest event_at, ties to the greatest event_id in
      byte order;
    - level meters (when the events hold any): the net change, the sum of the values.
    Each row keeps the state that adds up (sum, max, the latest event and its value, the count,
    the highest landing_seq): a run that adds events merges the new events' state with the
    groups' rows it holds, and delete+insert replaces those rows. Emits CTEs `added` and
    `aggregated` (comma first). -#}
{% macro aggregate_usage_incrementally(events, group_columns, unique_values_filter, unique_values='int_usage_unique_values') -%}
    {%- set group_list = group_columns | join(', ') -%}
    {%- set adds = usage_layer_adds() -%}
    , added as (
        select
            {{ group_list }},
            aggregation,
            sum(case when aggregation in ('sum', 'time_weighted_sum', 'running_total')
                then value end) as sum_value,
            max(case when aggregation = 'max' then value end) as max_value,
            {{ latest_value("case when aggregation = 'latest' then value end") }} as latest_value,
            max(case when aggregation = 'latest' then event_at end) as latest_event_at,
            {{ latest_value("case when aggregation = 'latest' then event_id end") }} as latest_event_id,
            count(distinct case when aggregation = 'unique_count' then unique_dimension_value end)
                as distinct_values,
            count(*) as event_count,
            max(landing_seq) as through_landing_seq
        from {{ events }} as grouped_events
        group by {{ group_list }}, aggregation
    )
    {%- if adds %}
    , held as (
        select held_rows.*
        from {{ this }} as held_rows
        inner join added
            on {% for column in group_columns -%}
                held_rows.{{ column }} = added.{{ column }} and {% endfor -%}
            held_rows.aggregation = added.aggregation
    )
    , merged as (
        select
            {{ group_list }},
            aggregation,
            sum(sum_value) as sum_value,
            max(max_value) as max_value,
            {{ latest_value('latest_value', 'latest_event_at', 'latest_event_id') }} as latest_value,
            max(latest_event_at) as latest_event_at,
            {{ latest_value('latest_event_id', 'latest_event_at', 'latest_event_id') }} as latest_event_id,
            sum(event_count) as event_count,
            max(through_landing_seq) as through_landing_seq
        from (
            select {{ group_list }}, aggregation, sum_value, max_value, latest_value,
                   latest_event_at, latest_event_id, event_count, through_landing_seq
            from added
            union all
            select {{ group_list }}, aggregation, sum_value, max_value, latest_value,
                   latest_event_at, latest_event_id, event_count, through_landing_seq
            from held
        ) as both_states
        group by {{ group_list }}, aggregation
    )
    , distinct_counts as (
        select {{ group_list }}, count(distinct unique_dimension_value) as distinct_values
        from {{ ref(unique_values) }} as unique_values
        where {{ unique_values_filter }}
            and exists (
                select 1 from added
                where added.aggregation = 'unique_count'
                {% for column in group_columns -%}
                    and added.{{ column }} = unique_values.{{ column }}
                {% endfor -%}
            )
        group by {{ group_list }}
    )
    , state as (
        select merged.*, coalesce(distinct_counts.distinct_values, 0) as distinct_values
        from merged
        left join distinct_counts
            on {% for column in group_columns -%}
                merged.{{ column }} = distinct_counts.{{ column }}{% if not loop.last %} and {% endif %}
            {% endfor %}
    )
    {%- else %}
    , state as (
        select * from added
    )
    {%- endif %}
    , aggregated as (
        select
            {{ group_list }},
            aggregation,
            cast(
                case aggregation
                    when 'sum' then sum_value
                    when 'count' then event_count
                    when 'unique_count' then distinct_values
                    when 'max' then max_value
                    when 'latest' then latest_value
                    -- a level meter's events here: their net change (the explorers' days)
                    when 'time_weighted_sum' then sum_value
                    when 'running_total' then sum_value
                end
                as {{ quantity_type() }}) as quantity,
            event_count,
            sum_value,
            max_value,
            latest_value,
            latest_event_at,
            latest_event_id,
            through_landing_seq,
            {{ usage_catalog_fingerprint() }} as catalog_fingerprint
        from state
    )
{%- endmacro %}

{#- The level rows of an aggregated usage model, with the columns of its aggregated rows (the
    adding state is NULL: they are recomputed whole on every run). `levels` is a CTE with the
    group columns, `aggregation`, `quantity`, `event_count`. -#}
{% macro level_usage_rows(levels, group_columns) -%}
    select
        {{ group_columns | join(', ') }},
        aggregation,
        quantity,
        event_count,
        cast(null as {{ quantity_type() }}) as sum_value,
        cast(null as {{ quantity_type() }}) as max_value,
        cast(null as {{ quantity_type() }}) as latest_value,
        cast(null as {{ dbt.type_timestamp() }}) as latest_event_at,
        cast(null as {{ dbt.type_string() }}) as latest_event_id,
        cast(null as bigint) as through_landing_seq,
        {{ usage_catalog_fingerprint() }} as catalog_fingerprint
    from {{ levels }}
{%- endmacro %}

{#- The level rows, which every run replaces (usage_layer_reset's also_replace). -#}
{% macro level_rows_condition() -%}
    aggregation in ('time_weighted_sum', 'running_total')
{%- endmacro %}

{#- The aggregate "`value` of the row with the greatest (event_at, event_id)" (event_id breaks
    ties in byte order; it is unique, so there is one such row). One pass, no sort: a window
    ranking every event cost more than all the other aggregates together. -#}
{% macro latest_value(value, event_at='event_at', event_id='event_id') -%}
    {{ return(adapter.dispatch('latest_value', 'meterline')(value, event_at, event_id)) }}
{%- endmacro %}

{% macro default__latest_value(value, event_at, event_id) -%}
    max_by({{ value }}, struct({{ event_at }}, {{ event_id }}))
{%- endmacro %}

{% macro duckdb__latest_value(value, event_at, event_id) -%}
    arg_max({{ value }}, row({{ event_at }}, {{ event_id }}))
{%- endmacro %}

{#- The aggregate "`value` of the row with the least (keys...)" (keys: SQL expressions, compared
    in order; the last should be unique), in one pass without a sort. -#}
{% macro first_by(value, keys) -%}
    {{ return(adapter.dispatch('first_by', 'meterline')(value, keys)) }}
{%- endmacro %}

{% macro default__first_by(value, keys) -%}
    min_by({{ value }}, struct({{ keys | join(', ') }}))
{%- endmacro %}

{% macro duckdb__first_by(value, keys) -%}
    arg_min({{ value }}, row({{ keys | join(', ') }}))
{%- endmacro %}

{#- The aggregate "the n-th least (instant, id) of the group", as a struct with fields
    `event_at` and `event_id` (NULL below n rows is the caller's to handle), in one pass. -#}
{% macro nth_earliest_instant_and_id(event_at, event_id, n) -%}
    {{ return(adapter.dispatch('nth_earliest_instant_and_id', 'meterline')(event_at, event_id, n)) }}
{%- endmacro %}

{% macro default__nth_earliest_instant_and_id(event_at, event_id, n) -%}
    array_max(slice(array_sort(collect_list(named_struct('event_at', {{ event_at }},
        'event_id', {{ event_id }}))), 1, {{ n }}))
{%- endmacro %}

{% macro duckdb__nth_earliest_instant_and_id(event_at, event_id, n) -%}
    list_max(min(struct_pack(event_at := {{ event_at }}, event_id := {{ event_id }}), {{ n }}))
{%- endmacro %}
