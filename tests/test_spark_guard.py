"""Issue 19, exactness guards: dbt refuses to build on Spark unless decimal operations keep
their precision, ANSI mode is on and the session is in UTC (macros/exact_engine_settings.sql).
Each test starts a real Spark session from a copy of the profile with one setting wrong: the
build stops on run start, naming the setting, before any table is written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from orchestration.lib import settings as settings_lib
from orchestration.lib import spark
from tests.conftest import REPO
from tests.spark_tier import require_spark

PROFILE = REPO / "dbt_project" / "profiles.yml"


def _seed_on_spark(tmp_path: Path, setting: str, value: str) -> subprocess.CompletedProcess:
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    text = PROFILE.read_text()
    wanted = {"spark.sql.decimalOperations.allowPrecisionLoss": '"false"',
              "spark.sql.ansi.enabled": '"true"', "spark.sql.session.timeZone": "UTC"}
    line = f"        {setting}: {wanted[setting]}\n"
    assert line in text, f"the profile no longer sets {setting} as {wanted[setting]}"
    (profiles / "profiles.yml").write_text(text.replace(line, f'        {setting}: "{value}"\n'))
    cfg = settings_lib.load({"METERLINE_HOME": str(tmp_path / "home")})
    env = {k: v for k, v in os.environ.items() if not k.startswith("METERLINE_")}
    env |= spark.spark_environment(cfg) | {"METERLINE_ENGINE": "spark",
                                           "METERLINE_WAREHOUSE": str(tmp_path / "unused.duckdb")}
    env.pop("METERLINE_SPARK_SOURCES")  # no sources: the guard comes first anyway
    dbt = Path(sys.executable).with_name("meterline-dbt")
    return subprocess.run(
        [str(dbt), "seed", "--target", "spark", "--project-dir", str(REPO / "dbt_project"),
         "--profiles-dir", str(profiles), "--target-path", str(tmp_path / "target"),
         "--log-path", str(tmp_path / "logs")],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False)


@pytest.mark.parametrize(("setting", "value", "why"), [
    ("spark.sql.decimalOperations.allowPrecisionLoss", "true", "rounded to 6 decimal places"),
    ("spark.sql.ansi.enabled", "false", "would become NULL"),
    ("spark.sql.session.timeZone", "America/New_York", "months would be bucketed"),
])
def test_the_guard_refuses_a_setting_that_is_not_exact(tmp_path, setting, value, why) -> None:
    require_spark()
    done = _seed_on_spark(tmp_path, setting, value)
    output = done.stdout + done.stderr
    assert done.returncode != 0, output[-3000:]
    assert "Refusing to bill on Spark" in output, output[-3000:]
    assert f"{setting} is '{value}'" in output and why in output, output[-3000:]
    # nothing was built: the seed's table never reached Spark's warehouse
    assert not list((tmp_path / "home" / "spark").glob("warehouse/*/iso_4217_currencies*"))
