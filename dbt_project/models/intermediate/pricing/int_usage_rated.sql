-- THE pricing model (contract sections 3-4): item usage priced with its resolved rate, one row
-- per invoice usage line, each amount rounded once to the currency's minor unit. It rates every
-- (customer, item, usage period) that int_rates_resolved resolved for the billed period: the
-- billed period's own usage (usage_period_start = billing_period_start: its usage lines), and the
-- published periods whose late usage the billed period restates (usage_period_start earlier:
-- those periods' lines re-priced with all usage landed so far, from which adjustments are made).
-- With Q = max(aggregate, 0):
--   per_unit  max(Q - free_units, 0) * unit_price                                  (one line)
--   package   ceil(max(Q - free_units, 0) / package_size) * unit_price, exact ceil (one line)
--   graduated each tier prices the units in it, plus its flat fee if any unit is in it
--             (one line per tier with units)
--   volume    the tier containing Q prices all Q units, plus that tier's flat fee (one line)
-- Flat fees only when Q > 0; Q = 0 gives one 0.00 tier-1 line for the tiered models.
-- `quantity` is what the line prices (a graduated tier: its units; otherwise Q, free units
-- included); `unit_price` is per unit, or per package for `package`.

with

rates as (

    select * from {{ ref('int_rates_resolved') }}
    where billing_period_start = {{ billing_period_start() }}

),

item_usage as (

    select * from {{ ref('int_item_usage_aggregated') }}

),

currencies as (

    select * from {{ ref('iso_4217_currencies') }}

),

product_items as (

    select * from {{ ref('stg_catalog__product_items') }}

),

tiers as (

    select
        rate_id,
        tier,
        up_to,
        unit_price,
        flat_fee,
        coalesce(lag(up_to) over (partition by rate_id order by tier), 0) as lower_bound

    from {{ ref('stg_catalog__rate_tiers') }}

),

usage_with_rate as (

    select
        rates.billing_period_start,
        rates.billing_period_end,
        item_usage.billing_period_start as usage_period_start,
        item_usage.billing_period_end as usage_period_end,
        item_usage.customer_id,
        item_usage.product_item_id,
        item_usage.meter_id,
        product_items.product_item_name,
        rates.currency,
        currencies.minor_unit,
        rates.rate_id,
        rates.pricing_model,
        rates.unit_price,
        rates.package_size,
        rates.free_units,
        item_usage.quantity as aggregate_quantity,
        case when item_usage.quantity > 0 then item_usage.quantity else 0 end as billable_quantity,
        'customer ' || item_usage.customer_id || ', product item ' || item_usage.product_item_id
            || ', period ' || cast(item_usage.billing_period_start as {{ text_type() }}) as billing_context

    from rates
    inner join item_usage
        on rates.customer_id = item_usage.customer_id
        and rates.product_item_id = item_usage.product_item_id
        and rates.usage_period_start = item_usage.billing_period_start
    left join currencies
        on rates.currency = currencies.currency
    left join product_items
        on item_usage.product_item_id = product_items.product_item_id

),

-- A line that cannot be priced stops billing, naming the customer and item (int_rates_resolved
-- already stopped on usage without a rate).
checked as (

    select
        billing_period_start,
        billing_period_end,
        usage_period_start,
        usage_period_end,
        customer_id,
        product_item_id,
        meter_id,
        product_item_name,
        currency,
        case
            when minor_unit is null
                then {{ raise_billing_error("billing_context || ': currency ' || currency || ' has no ISO 4217 minor unit in the currency seed'") }}
            else minor_unit
        end as minor_unit,
        case
            when pricing_model not in ('per_unit', 'package', 'graduated', 'volume')
                then {{ raise_billing_error("billing_context || ': unknown pricing model ' || pricing_model") }}
            when pricing_model = 'package' and coalesce(package_size, 0) <= 0
                then {{ raise_billing_error("billing_context || ': package_size must be > 0'") }}
            else rate_id
        end as rate_id,
        pricing_model,
        unit_price,
        package_size,
        free_units,
        aggregate_quantity,
        billable_quantity,
        billing_context

    from usage_with_rate

),

-- per_unit and package: one line per item.
flat_priced_units as (

    select
        checked.*,
        case
            when billable_quantity > free_units then billable_quantity - free_units
            else cast(0 as {{ quantity_type() }})
        end as chargeable_quantity

    from checked
    where pricing_model in ('per_unit', 'package')

),

flat_lines as (

    select
        *,
        cast(null as integer) as tier,
        billable_quantity as quantity,
        case
            when pricing_model = 'package'
                then cast({{ ceil_divide_exact('chargeable_quantity', 'package_size', 'billing_context') }} as {{ quantity_type() }})
            else chargeable_quantity
        end as priced_units,
        cast(0 as {{ quantity_type() }}) as flat_fee

    from flat_priced_units

),

-- graduated and volume: the rate's tiers, with the bound each tier starts above.
tiered_usage as (

    select
        checked.*,
        case
            when tiers.tier is null
                then {{ raise_billing_error("billing_context || ': rate ' || checked.rate_id || ' has no tiers'") }}
            else tiers.tier
        end as tier,
        tiers.lower_bound,
        tiers.up_to,
        -- Q capped at the tier's upper bound: the units up to and including this tier
        case
            when tiers.up_to is null or checked.billable_quantity < tiers.up_to then checked.billable_quantity
            else tiers.up_to
        end as units_through_tier,
        tiers.unit_price as tier_unit_price,
        tiers.flat_fee as tier_flat_fee

    from checked
    left join tiers
        on checked.rate_id = tiers.rate_id
    where checked.pricing_model in ('graduated', 'volume')

),

graduated_tier_units as (

    select
        *,
        case
            when units_through_tier > lower_bound then units_through_tier - lower_bound
            else cast(0 as {{ quantity_type() }})
        end as units_in_tier

    from tiered_usage
    where pricing_model = 'graduated'

),

graduated_lines as (

    select
        *,
        units_in_tier as quantity,
        units_in_tier as priced_units,
        case when units_in_tier > 0 then tier_flat_fee else cast(0 as {{ quantity_type() }}) end as flat_fee

    from graduated_tier_units
    where units_in_tier > 0
        or (billable_quantity = 0 and tier = 1)

),

volume_lines as (

    select
        *,
        billable_quantity as quantity,
        billable_quantity as priced_units,
        case when billable_quantity > 0 then tier_flat_fee else cast(0 as {{ quantity_type() }}) end as flat_fee

    from tiered_usage
    where pricing_model = 'volume'
        and (billable_quantity > lower_bound or tier = 1)
        and (up_to is null or billable_quantity <= up_to)

),

lines as (

    select
        billing_period_start, billing_period_end, usage_period_start, usage_period_end,
        customer_id, currency, minor_unit,
        product_item_id, product_item_name, meter_id, rate_id, pricing_model,
        aggregate_quantity, billable_quantity, tier, quantity, priced_units,
        unit_price, flat_fee, billing_context
    from flat_lines

    union all

    select
        billing_period_start, billing_period_end, usage_period_start, usage_period_end,
        customer_id, currency, minor_unit,
        product_item_id, product_item_name, meter_id, rate_id, pricing_model,
        aggregate_quantity, billable_quantity, tier, quantity, priced_units,
        tier_unit_price as unit_price, flat_fee, billing_context
    from graduated_lines

    union all

    select
        billing_period_start, billing_period_end, usage_period_start, usage_period_end,
        customer_id, currency, minor_unit,
        product_item_id, product_item_name, meter_id, rate_id, pricing_model,
        aggregate_quantity, billable_quantity, tier, quantity, priced_units,
        tier_unit_price as unit_price, flat_fee, billing_context
    from volume_lines

),

amounts as (

    select
        *,
        {{ exact_line_amount('priced_units', 'unit_price', 'flat_fee', 'billing_context') }} as unrounded_amount

    from lines

),

rated as (

    select
        billing_period_start,
        billing_period_end,
        usage_period_start,
        usage_period_end,
        customer_id,
        currency,
        cast(minor_unit as integer) as minor_unit,
        product_item_id,
        product_item_name,
        meter_id,
        rate_id,
        pricing_model,
        cast(aggregate_quantity as {{ quantity_type() }}) as aggregate_quantity,
        cast(billable_quantity as {{ quantity_type() }}) as billable_quantity,
        cast(tier as integer) as tier,
        cast(quantity as {{ quantity_type() }}) as quantity,
        cast(priced_units as {{ quantity_type() }}) as priced_units,
        cast(unit_price as {{ quantity_type() }}) as unit_price,
        cast(flat_fee as {{ quantity_type() }}) as flat_fee,
        cast(unrounded_amount as {{ exact_amount_type() }}) as unrounded_amount,
        {{ round_to_minor_unit('unrounded_amount', 'minor_unit') }} as amount

    from amounts

)

select * from rated
