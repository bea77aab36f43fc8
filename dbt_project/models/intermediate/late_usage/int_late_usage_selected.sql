-- The late usage the billed period restates (contract section 8): one row per (customer,
-- published period P, product item) with priced events that are late for P and not yet billed
-- by a published adjustment, when the billed period is the earliest unpublished period after P.
--   - An event is late for P when it landed after P was published. An event of a level meter
--     is usage of its own period and of every later one, so it is late for each of those
--     published before it landed, whether or not its own period was published.
--   - It is already billed when it landed no later than the publication of the last published
--     invoice that carried an adjustment for (customer, P, item): publishing builds the period on
--     the events landed at that moment, so that adjustment restated it.
--   - The billed period carries P's late usage only when it is not published itself and every
--     month between P and it is published (late usage goes on the earliest unpublished invoice
--     after P; a customer without one gets an invoice to carry it).
-- Late events that no item prices are unbilled usage: they only update the usage marts.

with

events as (

    select * from {{ ref('int_usage_events_matched') }}
    where product_item_id is not null

),

published_periods as (

    select * from {{ ref('stg_billing__published_periods') }}

),

published_adjustments as (

    select * from {{ ref('stg_billing__published_invoice_lines') }}
    where line_type = 'adjustment'
        and product_item_id is not null
        and billing_period_start in (select billing_period_start from published_periods)

),

billed_period_is_published as (

    select count(*) as published_count
    from published_periods
    where billing_period_start = {{ billing_period_start() }}

),

-- Published periods before the billed one, with the number of published months from each up to
-- the billed period: when that is every month in between, the billed period is the earliest
-- unpublished period after it.
published_runs as (

    select
        published_periods.billing_period_start as usage_period_start,
        published_periods.published_at,
        count(*) as published_months

    from published_periods
    inner join published_periods as later_periods
        on later_periods.billing_period_start >= published_periods.billing_period_start
        and later_periods.billing_period_start < {{ billing_period_start() }}
    group by published_periods.billing_period_start, published_periods.published_at

),

restatable_periods as (

    select
        published_runs.usage_period_start,
        published_runs.published_at

    from published_runs
    cross join billed_period_is_published
    where billed_period_is_published.published_count = 0
        and published_runs.published_months
            = {{ dbt.datediff('published_runs.usage_period_start', billing_period_start(), 'month') }}

),

-- When (customer, P, item) was last restated on a published invoice.
last_published_adjustments as (

    select
        published_adjustments.customer_id,
        published_adjustments.usage_period_start,
        published_adjustments.product_item_id,
        max(published_periods.published_at) as last_adjusted_at

    from published_adjustments
    inner join published_periods
        on published_adjustments.billing_period_start = published_periods.billing_period_start
    group by
        published_adjustments.customer_id,
        published_adjustments.usage_period_start,
        published_adjustments.product_item_id

),

-- The restatable periods each priced event is usage of: its own period and, for a level meter,
-- every later one too (its change holds from its instant on: section 8).
event_periods as (

    select
        events.event_id,
        events.customer_id,
        events.product_item_id,
        events.meter_id,
        events.landed_at,
        restatable_periods.usage_period_start,
        restatable_periods.published_at

    from events
    inner join restatable_periods
        on events.usage_period_start = restatable_periods.usage_period_start

    union all

    select
        events.event_id,
        events.customer_id,
        events.product_item_id,
        events.meter_id,
        events.landed_at,
        restatable_periods.usage_period_start,
        restatable_periods.published_at

    from events
    inner join restatable_periods
        on events.usage_period_start < restatable_periods.usage_period_start
    where events.is_level

),

unbilled_late_events as (

    select
        event_periods.event_id,
        event_periods.customer_id,
        event_periods.usage_period_start,
        {{ add_months('event_periods.usage_period_start', 1) }} as usage_period_end,
        event_periods.product_item_id,
        event_periods.meter_id,
        event_periods.landed_at,
        event_periods.published_at

    from event_periods
    left join last_published_adjustments
        on event_periods.customer_id = last_published_adjustments.customer_id
        and event_periods.usage_period_start = last_published_adjustments.usage_period_start
        and event_periods.product_item_id = last_published_adjustments.product_item_id
    where event_periods.landed_at > event_periods.published_at
        and (last_published_adjustments.last_adjusted_at is null
            or event_periods.landed_at > last_published_adjustments.last_adjusted_at)

),

selected as (

    select
        {{ billing_period_start() }} as billing_period_start,
        {{ billing_period_end() }} as billing_period_end,
        customer_id,
        usage_period_start,
        usage_period_end,
        product_item_id,
        meter_id,
        max(published_at) as usage_period_published_at,
        cast(count(*) as bigint) as late_event_count,
        min(landed_at) as first_landed_at,
        max(landed_at) as last_landed_at

    from unbilled_late_events
    group by customer_id, usage_period_start, usage_period_end, product_item_id, meter_id

)

select * from selected
