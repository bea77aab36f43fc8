"""The background import of great-expectations (reconciliation/expectations.py ``preload``)
never races the thread that stores Dagster's events with SQLAlchemy.

Seen in a full test run under load: a month-to-date refresh failed with ``AttributeError:
partially initialized module 'sqlalchemy.orm.exc' has no attribute 'UnmappedClassError'``,
raised in Dagster's event storage while the preload thread was importing ``sqlalchemy.orm``.
Here a fresh interpreter (nothing imported yet, as in a new `meterline bill`) starts the preload
and builds SQLAlchemy statements in the calling thread until the import ends: without
``sqlalchemy.orm`` imported first, this failed in two runs of three."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO

PROBE = """
import dagster, dagster_dbt  # what the billing step has loaded when it starts the preload
import sqlalchemy
from orchestration.billing.reconciliation import expectations

thread = expectations.preload()
selects = errors = 0
last = ""
while thread.is_alive():
    try:
        sqlalchemy.select(1)
        selects += 1
    except Exception as exc:
        errors += 1
        last = repr(exc)[:200]
print(selects, errors, last)
"""


def test_the_great_expectations_preload_never_half_imports_what_dagster_uses():
    for _ in range(2):
        done = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, capture_output=True,
                              text=True, timeout=300, check=False)
        assert done.returncode == 0, done.stderr[-2000:]
        selects, errors, last = (done.stdout.strip() + "  ").split(" ", 2)
        assert int(selects) > 0  # the probe ran while the import did
        assert int(errors) == 0, last
