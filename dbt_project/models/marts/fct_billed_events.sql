{{ config(materialized='view') }}

-- Contract section 5: which invoice bills each landed event. An event that no item prices has
-- NULL product_item_id, invoice_id and line_type; a priced event names the invoice whose usage
-- line bills it once its period has an invoice built (draft or published). An event that landed
-- after its period P was published is late (section 8): it names the invoice whose adjustment
-- line for (customer, P, item) bills it, i.e. the earliest invoice with such a line that was
-- published no earlier than the event landed, or else the draft carrying it (the earliest
-- unpublished period after P); until that draft is built it names none.

with

{{ billed_events_ctes() }}

select
    event_id,
    customer_id,
    meter_id,
    event_at,
    usage_period_start,
    product_item_id,
    invoice_id,
    line_type

from billed_events
