"""What the landing SQL is built from: the temp tables of one call and the quoting of a literal
or an identifier that SQL text embeds."""

from __future__ import annotations

from orchestration.ingestion.landing.model import NON_NEGATIVE_AGGREGATIONS

# Temp objects live in the caller's connection for the duration of one call only.
_T = "_ml_ingest"
STAGE = f"{_T}_stage"
CAND = f"{_T}_cand"  # rows of text files and re-checked rows, typed (classify.sql)
KEYS = f"{_T}_keys"  # every row of the batch, narrow: position, id, first failed rule
SEEN = f"{_T}_seen"  # the landed events sharing an id with a valid row of the batch
CONTESTED = f"{_T}_contested"  # ids landed before or carried by several valid rows
NEED = f"{_T}_need"  # the rows looked at whole: quarantined or of a contested id
WIDE = f"{_T}_wide"  # those rows with every field (raw_row included)
EXC = f"{_T}_exc"  # every row that does not simply land: duplicate or quarantined
FILES = f"{_T}_files"
LK_CUST = f"{_T}_customers"
LK_METER = f"{_T}_meters"
LINES = f"{_T}_lines"
RECS = f"{_T}_records"
#: the tables emptied after each batch (the others live for the whole call)
BATCH_TABLES = (STAGE, CAND, KEYS, SEEN, CONTESTED, NEED, WIDE, EXC)
TEMP_TABLES = (*BATCH_TABLES, FILES, LK_CUST, LK_METER, LINES, RECS)


def reason_case(*, malformed: str, missing: str, event_id: str, value_flag: str, value: str,
                timestamp: str, dimensions: str) -> str:
    """The first rule a row breaks, in contract order (NULL: none), from its failure flags
    (SQL boolean expressions) and the catalog lookups ``m`` (meters) and ``k`` (customers).
    ``negative_value`` only on a known meter of NON_NEGATIVE_AGGREGATIONS: ``sum`` meters take
    negative corrections, level meters signed changes (an unknown meter goes on to the later
    rules)."""
    non_negative = ", ".join(lit(a) for a in NON_NEGATIVE_AGGREGATIONS)
    return f"""case when {malformed} then 'malformed_row'
             when {missing} then 'missing_field'
             when {event_id} then 'invalid_event_id'
             when {value_flag} then 'invalid_value'
             when {value} < 0 and m.aggregation in ({non_negative}) then 'negative_value'
             when {timestamp} then 'invalid_timestamp'
             when {dimensions} then 'invalid_dimensions'
             when k.customer_id is null then 'unknown_customer'
             when m.aggregation is null then 'unknown_meter'
        end"""


def keys_insert(rows: str) -> str:
    """Insert ``rows`` (a select of pos, phase, file_idx, event_id, event_at and reason) into
    KEYS, with the UTC month of every valid row dated outside $lo..$hi (the billable range)."""
    return f"""
        insert into {KEYS}
        select pos, phase, file_idx, event_id, reason,
               case when reason is null and (event_at < $lo or event_at >= $hi)
                    then strftime(timezone('UTC', event_at), '%Y-%m') end
        from ({rows})
    """


def lit(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def ident(s: str) -> str:
    return '"' + s.replace('"', '""') + '"'
