{#- Aggregate usage events with their meter's aggregation (contract section 3), one row per
    group. `events` is a relation or CTE with the group columns and `aggregation`, `value`,
    `unique_dimension_value`, `event_at`, `event_id`; `group_columns` must include the period.
    - sum, max: of `value`; count: the events;
    - unique_count: distinct `unique_dimension_value` (events without it count in event_count only);
    - latest: the value of the event with the greatest event_at, ties to the greatest event_id in
      byte order. Each aggregate reads only its own meters' rows, so e.g. the values of a count
      meter are never summed. -#}
{% macro aggregate_usage(events, group_columns) -%}
    {%- set group_list = group_columns | join(', ') -%}
    select
        {{ group_list }},
        aggregation,
        cast(
            case aggregation
                when 'sum' then sum(case when aggregation = 'sum' then value end)
                when 'count' then count(*)
                when 'unique_count' then count(distinct case when aggregation = 'unique_count' then unique_dimension_value end)
                when 'max' then max(case when aggregation = 'max' then value end)
                when 'latest' then {{ latest_value("case when aggregation = 'latest' then value end") }}
            end
            as {{ quantity_type() }}) as quantity,
        count(*) as event_count
    from {{ events }} as grouped_events
    group by {{ group_list }}, aggregation
{%- endmacro %}

{#- The aggregate "`value` of the row with the greatest (event_at, event_id)" (event_id breaks
    ties in byte order; it is unique, so there is one such row). One pass, no sort: a window
    ranking every event cost more than all the other aggregates together. -#}
{% macro latest_value(value) -%}
    {{ return(adapter.dispatch('latest_value', 'meterline')(value)) }}
{%- endmacro %}

{% macro default__latest_value(value) -%}
    max_by({{ value }}, struct(event_at, event_id))
{%- endmacro %}

{% macro duckdb__latest_value(value) -%}
    arg_max({{ value }}, row(event_at, event_id))
{%- endmacro %}
