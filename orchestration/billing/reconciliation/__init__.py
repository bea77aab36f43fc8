"""Independent reconciliation of one billing period, before anything is published.

``registry.run_checks(con, catalog, period_start)`` re-derives the period from ``raw.*`` and the
catalog it is given (the CSVs as read, never the ``catalog.*`` tables the bill run loaded) and
compares the result with what the dbt path wrote to the marts. It shares no code with the SQL
path: aggregates are recomputed here in set-based SQL of its own (JSON pointers instead of the
models' ``$."key"`` paths, ordered aggregates instead of window ranks), and every line is priced
again by ``orchestration.billing.pricer`` in ``decimal.Decimal``.

One owner per invariant: claims stated over the warehouse's own tables (invoice totals = sum of
lines, gap-free and ordered line numbers, one invoice per customer and period, keys, value sets)
are dbt tests (``dbt_project/tests``, ``_marts__models.yml``); these checks keep only what must
stay independent of the SQL path. ``registry.CHECKS`` is the one table of them: name, the asset
it proves, blocking, description and the function that runs it.

Each check returns a ``CheckResult(name, passed, blocking, summary, figures)``; ``figures`` is
JSON-able (money and quantities as strings) and lists the first differences found. A check that
cannot run (a missing table, SQL error) fails, blocking: publishing must fail closed.

Checks (what each compares):
- ``landed_file_counts`` (``files``): per ``raw.landed_files`` row, rows_read = landed +
  duplicate + quarantined, and each stored count = the file's rows in raw.usage_events /
  raw.duplicate_events (``is_relanded = false``) / raw.quarantined_events (once per file,
  resolved or not); per file, re-landed rows = resolved quarantine rows; no raw row of a file
  that raw.landed_files does not record.
- ``events_counted_once`` (``usage``): per (customer, meter) of the period, the raw event count =
  ``fct_meter_usage.event_count`` and the meter's aggregation recomputed from the raw events =
  ``fct_meter_usage.quantity``; one fct row per key, none without events, except a level
  meter's row of a non-zero carried level (event_count 0), which must be there.
- ``rated_quantity_matches_usage`` (``rated``): per (invoice, item), the usage lines' quantities
  add up to max(item aggregate, 0), the aggregate recomputed from the raw events the item's
  filter matches; every item with usage has lines (a level meter's item: every live item, one
  with an event of the period or a non-zero level carried in); no event matches two items.
- ``line_amounts_match_decimal_pricer`` (``amounts``): the Decimal pricer's usage and
  minimum_commitment lines vs ``fct_invoice_lines``: the same (customer, line type, item, tier)
  set, equal amounts to the minor unit, equal quantity, unit price and currency.
- ``unbilled_usage_reported`` (``usage``, non-blocking): ``fct_unbilled_usage`` vs the events no
  item matches, recomputed; its figures are the period's unbilled counts and quantities.
- ``table_expectations`` (``expectations``): great-expectations (pandas route) on invoice totals
  and line amounts as integer minor units: known currency and within a sane range, the one claim
  no dbt test states. Only keys and integers reach pandas: money is never summed as floats.

Level meters (``time_weighted_sum``, ``running_total``; ``levels``): per set (the customer's
events of the meter, an item's, the unbilled ones) the level is recomputed step by step from the
set's events before the period's end: the level carried in, then the level from each distinct
instant of the period's events on (a window) and how long it holds, the integral being the sum of
level x duration in exact integers, divided by the time unit in Python and rounded once to 12
places, half away from zero. The dbt models use a closed form instead. A month not yet over
accrues up to the run's instant (``run_checks(..., run_instant=)``, as the dbt build of the same
run). A customer with a non-zero level carried in by an item's or the unbilled events must get
an invoice.

Scope: the marts are read for ``billing_period_start = period_start`` only. Events are those of
the period (the UTC month of ``event_at``), and for level meters every earlier event too. For a
published period, lines and recipients are compared with the events landed up to its
``published_at`` (later ones are late usage, billed by adjustments elsewhere; a level's too);
meter and unbilled usage cover all events landed so far, as the marts do.
"""
