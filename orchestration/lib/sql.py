"""SQL kept in `.sql` files beside the module that runs it (a `sql/` folder next to it)."""

from __future__ import annotations

import functools
import re
from pathlib import Path

_PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")


@functools.cache
def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def read_sql(module_file: str, name: str, **names: str) -> str:
    """The text of `sql/<name>` beside `module_file` (pass `__file__`), with every `{{ key }}`
    replaced by `names[key]`. Only identifiers the code owns (temporary table names) are filled in
    this way; values always travel as query parameters. A placeholder without a value is an
    error, so a renamed one cannot run half-filled."""
    text = _text(Path(module_file).resolve().parent / "sql" / name)

    def fill(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in names:
            raise KeyError(f"{name}: no value for {{{{ {key} }}}}")
        return names[key]

    return _PLACEHOLDER.sub(fill, text)
