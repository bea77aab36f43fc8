"""``events_counted_once`` and ``unbilled_usage_reported``: meter usage and unbilled usage
recomputed from the period's raw events (a level meter's from its level, ``levels``) and
compared with their marts."""

from __future__ import annotations

from orchestration.billing.reconciliation.result import MAX_LISTED, Findings, plain
from orchestration.billing.reconciliation.run import Run, aggregate_sql
from orchestration.lib.sql import read_sql

EVENTS = ("select customer_id, meter_id, value, event_at, event_id, aggregation, unique_value "
          "from temp._recon_period_events as e where not e.is_level")
UNBILLED_EVENTS = EVENTS + (" and not exists (select 1 from temp._recon_event_items as ei "
                            "where ei.event_id = e.event_id)")


def _recomputed(run: Run, events: str, kind: str) -> str:
    """The recomputed rows of the other aggregations (no carried level) and the live level
    sets of ``kind``, keyed by (customer_id, meter_id)."""
    return (f"select *, cast(null as decimal(38, 12)) as carried_level from "
            f"({aggregate_sql(events, 'customer_id, meter_id')}) as aggregated "
            f"union all {run.level_usage_sql(kind)}")


def _carried(carried) -> str:
    return f"level {plain(carried)} carried in"


def events_counted_once(run: Run) -> Findings:
    sql = read_sql(__file__, "meter_usage_compared.sql",
                   recomputed=_recomputed(run, EVENTS, "meter"))
    rows = run.con.execute(sql, {"period": run.start, "end_date": run.end}).fetchall()
    levels = {(s.customer_id, s.set_id): s for s in run.levels("meter")}
    differences = []
    raw_events = fct_events = carried_rows = 0
    for (customer, meter, aggregation, raw_n, raw_q, expected, carried, fct_rows, fct_n, fct_q,
         quantities, end_ok) in rows:
        raw_events += raw_n
        fct_events += fct_n or 0
        carried_rows += int(expected and raw_n == 0)
        is_level = meter in run.level_meters
        of = (f"the {aggregation} of the level ({_carried(carried)})" if is_level
              else f"the {aggregation} of the raw events")
        problems = []
        if fct_rows == 0:
            problems.append(f"{raw_n} raw event(s) counted in no fct_meter_usage row" if raw_n
                            else f"no fct_meter_usage row, but a non-zero {_carried(carried)} "
                            f"is usage of the period (event_count 0, quantity {plain(raw_q)})")
        elif not expected:
            problems.append(f"an fct_meter_usage row with event_count {fct_n} and no raw "
                            "event in the period"
                            + (" nor a non-zero level carried in" if is_level else ""))
        else:
            if fct_rows > 1:
                problems.append(f"{fct_rows} fct_meter_usage rows for one customer and meter")
            if fct_n != raw_n:
                problems.append(f"event_count {fct_n} but {raw_n} raw event(s)"
                                + (" (a carried level counts none)" if is_level else ""))
            if aggregation is None:
                problems.append(f"meter {meter} is not in meters.csv: no aggregation")
            elif quantities != 1 or fct_q != raw_q:
                problems.append(f"quantity {plain(fct_q)} but {of} is {plain(raw_q)}")
            if not end_ok:
                problems.append(f"billing_period_end is not {run.end}")
        if problems:
            entry = {"customer_id": customer, "meter_id": meter, "aggregation": aggregation,
                     "raw_event_count": raw_n, "fct_event_count": fct_n,
                     "recomputed_quantity": raw_q, "fct_quantity": fct_q, "problems": problems}
            if (customer, meter) in levels:
                entry["level"] = levels[(customer, meter)].describe()
            differences.append(entry)
    figures = {"raw_events": raw_events, "fct_event_count": fct_events,
               "customer_meters": len(rows), "carried_level_rows": carried_rows,
               "accrued_to": run.bound.isoformat()}
    return Findings(
        differences,
        f"{raw_events} event(s) of {run.start:%Y-%m} counted once in {len(rows)} "
        "fct_meter_usage row(s), every quantity equal to its recomputed aggregate"
        + (f" ({carried_rows} row(s) of a carried level alone)" if carried_rows else ""),
        f"{len(differences)} customer/meter row(s) disagree ({raw_events} raw events, "
        f"{fct_events} counted), first: "
        + (f"{differences[0]['customer_id']}/{differences[0]['meter_id']}: "
           f"{'; '.join(differences[0]['problems'])}" if differences else ""),
        figures)


def unbilled_usage_reported(run: Run) -> Findings:
    sql = read_sql(__file__, "unbilled_usage_compared.sql",
                   recomputed=_recomputed(run, UNBILLED_EVENTS, "unbilled"))
    rows = run.con.execute(sql, {"period": run.start}).fetchall()
    levels = {(s.customer_id, s.set_id): s for s in run.levels("unbilled")}
    differences = []
    reported = []
    events = 0
    for (customer, meter, _aggregation, raw_n, raw_q, expected, carried, fct_rows, fct_n,
         fct_q) in rows:
        if fct_rows:
            events += fct_n or 0
            reported.append({"customer_id": customer, "meter_id": meter,
                             "quantity": fct_q, "event_count": fct_n})
        is_level = meter in run.level_meters
        problems = []
        if not expected:
            problems.append("reported, but every event of the meter is priced by an item"
                            + (" and no unbilled level is carried in" if is_level else ""))
        elif fct_rows != 1:
            problems.append((f"{raw_n} event(s) no item prices" if raw_n or not is_level
                             else f"an unbilled {_carried(carried)}")
                            + f", reported in {fct_rows} fct_unbilled_usage row(s)")
        elif fct_n != raw_n or fct_q != raw_q:
            problems.append(f"reported {fct_n} event(s), quantity {plain(fct_q)}; recomputed "
                            f"{raw_n}, {plain(raw_q)}"
                            + (f" ({_carried(carried)})" if is_level else ""))
        if problems:
            entry = {"customer_id": customer, "meter_id": meter,
                     "recomputed_event_count": raw_n, "recomputed_quantity": raw_q,
                     "fct_event_count": fct_n, "fct_quantity": fct_q, "problems": problems}
            if (customer, meter) in levels:
                entry["level"] = levels[(customer, meter)].describe()
            differences.append(entry)
    figures = {"rows": len(reported), "events": events, "unbilled": reported[:MAX_LISTED]}
    ok = (f"{events} unbilled event(s) in {len(reported)} customer/meter row(s), as recomputed"
          if reported else "no unbilled usage in the period")
    return Findings(differences, ok,
                    f"fct_unbilled_usage disagrees with the recomputed unbilled usage in "
                    f"{len(differences)} row(s)"
                    + (f", first: {differences[0]['customer_id']}/{differences[0]['meter_id']}: "
                       f"{'; '.join(differences[0]['problems'])}" if differences else ""),
                    figures)
