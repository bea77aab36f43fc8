"""A hand-made catalog and month (written by the tests, not the demo), with its figures worked
by hand.

Worked by hand for October 2026 (CONTRACT.md sections 3-5):

hm_usd (USD): calls (sum, graduated 1..1000 @0.01, 1000+ @0.005 + 1.00 flat)
  700 (10-02Z) + 800.5 (10-20 +02:00) + 1 (10-31 23:59:59.999999Z, the last instant)
  + 5 (11-01 00:30+01:00 = 10-31 23:30Z) + 1000 (09-30 23:00-02:00 = 10-01 01:00Z) = 2506.5;
  999 at 11-01 00:00Z is November.
  tier 1: 1000 x 0.01 = 10.00; tier 2: 1506.5 x 0.005 + 1.00 = 8.5325 -> 8.53
  seats (latest): 4 then 6 -> 6 x 10 = 60.00
  storage (max): 12.5, 40, 20 -> 40 x 0.023 = 0.92
  users (unique_count user_id, volume 1..10 @5): u1 u2 u3 u1 -> 3 x 5 = 15.00
  total 94.45
hm_eur (EUR): calls 120 + 30.25 = 150.25, package 100 @2.50 with 50 free:
  ceil(100.25 / 100) = 2 -> 5.00; seats 3 x 9 = 27.00; subtotal 32.00 < commitment 50.00
  -> minimum_commitment 18.00; total 50.00
hm_jpy (JPY): calls 15 x 0.3 = 4.5 -> 5 (half away from zero); storage 7 x 3 = 21; total 26
hm_idle (USD): active, no usage -> an invoice with no lines, 0.00
"""

from __future__ import annotations

import json
from pathlib import Path

CATALOG = {
    "customers.csv": """customer_id,customer_name,currency,active_from,active_to
hm_usd,Handmade USD,USD,,
hm_eur,Handmade EUR,EUR,,
hm_jpy,Handmade JPY,JPY,,
hm_idle,Handmade Idle,USD,,
""",
    "meters.csv": """meter_id,display_name,unit,aggregation,unique_dimension
calls,Calls,call,sum,
gb,Storage,GB,max,
users,Users,user,unique_count,user_id
seats,Seats,seat,latest,
""",
    "product_items.csv": """product_item_id,display_name,meter_id,dimension_filter
calls_item,Calls,calls,
storage_item,Storage,gb,
users_item,Users,users,
seats_item,Seats,seats,
""",
    "rates.csv": """rate_id,product_item_id,customer_id,currency,pricing_model,unit_price,package_size,free_units,effective_from,effective_to
r_calls_usd,calls_item,,USD,graduated,,,,2026-01-01,
r_calls_eur,calls_item,,EUR,package,2.50,100,50,2026-01-01,
r_calls_jpy,calls_item,,JPY,per_unit,0.3,,0,2026-01-01,
r_storage_usd,storage_item,,USD,per_unit,0.023,,0,2026-01-01,
r_storage_eur,storage_item,,EUR,per_unit,0.021,,0,2026-01-01,
r_storage_jpy,storage_item,,JPY,per_unit,3,,0,2026-01-01,
r_users_usd,users_item,,USD,volume,,,,2026-01-01,
r_users_eur,users_item,,EUR,volume,,,,2026-01-01,
r_users_jpy,users_item,,JPY,volume,,,,2026-01-01,
r_seats_usd,seats_item,,USD,per_unit,10,,0,2026-01-01,
r_seats_eur,seats_item,,EUR,per_unit,9,,0,2026-01-01,
r_seats_jpy,seats_item,,JPY,per_unit,1500,,0,2026-01-01,
""",
    "rate_tiers.csv": """rate_id,tier,up_to,unit_price,flat_fee
r_calls_usd,1,1000,0.01,0
r_calls_usd,2,,0.005,1.00
r_users_usd,1,10,5,0
r_users_usd,2,,4,0
r_users_eur,1,10,4.5,0
r_users_eur,2,,4,0
r_users_jpy,1,10,700,0
r_users_jpy,2,,600,0
""",
    "commitments.csv": """customer_id,minimum_amount,currency,effective_from,effective_to
hm_eur,50.00,EUR,2026-01-01,
""",
}

EVENTS = [
    {"event_id": "u-c1", "customer_id": "hm_usd", "meter": "calls", "value": 700, "timestamp": "2026-10-02T00:00:00Z"},
    {"event_id": "u-c2", "customer_id": "hm_usd", "meter": "calls", "value": "800.5", "timestamp": "2026-10-20T12:00:00+02:00"},
    {"event_id": "u-c3", "customer_id": "hm_usd", "meter": "calls", "value": 1, "timestamp": "2026-10-31T23:59:59.999999Z"},
    {"event_id": "u-c4", "customer_id": "hm_usd", "meter": "calls", "value": 5, "timestamp": "2026-11-01T00:30:00+01:00"},
    {"event_id": "u-c5", "customer_id": "hm_usd", "meter": "calls", "value": 1000, "timestamp": "2026-09-30T23:00:00-02:00"},
    {"event_id": "u-c6", "customer_id": "hm_usd", "meter": "calls", "value": 999, "timestamp": "2026-11-01T00:00:00Z"},
    {"event_id": "u-s1", "customer_id": "hm_usd", "meter": "seats", "value": 4, "timestamp": "2026-10-05T00:00:00Z"},
    {"event_id": "u-s2", "customer_id": "hm_usd", "meter": "seats", "value": 6, "timestamp": "2026-10-25T00:00:00Z"},
    {"event_id": "u-g1", "customer_id": "hm_usd", "meter": "gb", "value": 12.5, "timestamp": "2026-10-03T00:00:00Z"},
    {"event_id": "u-g2", "customer_id": "hm_usd", "meter": "gb", "value": 40, "timestamp": "2026-10-09T00:00:00Z"},
    {"event_id": "u-g3", "customer_id": "hm_usd", "meter": "gb", "value": 20, "timestamp": "2026-10-30T00:00:00Z"},
    {"event_id": "u-u1", "customer_id": "hm_usd", "meter": "users", "timestamp": "2026-10-04T00:00:00Z", "dimensions": {"user_id": "u1"}},
    {"event_id": "u-u2", "customer_id": "hm_usd", "meter": "users", "timestamp": "2026-10-04T01:00:00Z", "dimensions": {"user_id": "u2"}},
    {"event_id": "u-u3", "customer_id": "hm_usd", "meter": "users", "timestamp": "2026-10-04T02:00:00Z", "dimensions": {"user_id": "u3"}},
    {"event_id": "u-u4", "customer_id": "hm_usd", "meter": "users", "timestamp": "2026-10-05T00:00:00Z", "dimensions": {"user_id": "u1"}},
    {"event_id": "e-c1", "customer_id": "hm_eur", "meter": "calls", "value": 120, "timestamp": "2026-10-06T00:00:00Z"},
    {"event_id": "e-c2", "customer_id": "hm_eur", "meter": "calls", "value": 30.25, "timestamp": "2026-10-07T00:00:00Z"},
    {"event_id": "e-s1", "customer_id": "hm_eur", "meter": "seats", "value": 3, "timestamp": "2026-10-08T00:00:00Z"},
    {"event_id": "j-c1", "customer_id": "hm_jpy", "meter": "calls", "value": 15, "timestamp": "2026-10-10T00:00:00+09:00"},
    {"event_id": "j-g1", "customer_id": "hm_jpy", "meter": "gb", "value": 7, "timestamp": "2026-10-11T00:00:00Z"},
]

EXPECTED = {
    "hm_usd": ("USD", "94.45", [
        ("usage", "calls_item", 1, "1000", "10.00"),
        ("usage", "calls_item", 2, "1506.5", "8.53"),
        ("usage", "seats_item", None, "6", "60.00"),
        ("usage", "storage_item", None, "40", "0.92"),
        ("usage", "users_item", 1, "3", "15.00"),
    ]),
    "hm_eur": ("EUR", "50.00", [
        ("usage", "calls_item", None, "150.25", "5.00"),
        ("usage", "seats_item", None, "3", "27.00"),
        ("minimum_commitment", None, None, None, "18.00"),
    ]),
    "hm_jpy": ("JPY", "26", [
        ("usage", "calls_item", None, "15", "5"),
        ("usage", "storage_item", None, "7", "21"),
    ]),
    "hm_idle": ("USD", "0.00", []),
}


def make_home(tmp_path: Path, catalog: dict[str, str] = CATALOG) -> tuple[Path, Path, Path]:
    home = tmp_path / "home"
    (home / "landing").mkdir(parents=True)
    cat = tmp_path / "catalog"
    cat.mkdir()
    for name, text in catalog.items():
        (cat / name).write_text(text)
    with (home / "landing" / "october.jsonl").open("w") as fh:
        for event in EVENTS:
            fh.write(json.dumps(event) + "\n")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    return home, cat, cwd


