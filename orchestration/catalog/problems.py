"""The one shape of a catalog problem, shared by every check of the price book."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One catalog problem, located by file, data row (1-based, header not counted) and field.

    ``key`` is the row's id as shown in messages (``r_disk_new``, ``r_api tier 2``);
    ``other_rows`` names further rows of a problem that involves several (an overlap)."""

    file: str
    row: int | None
    field: str | None
    message: str
    key: str | None = None
    other_rows: tuple[int, ...] = ()

    @property
    def rows(self) -> tuple[int, ...]:
        return ((self.row,) if self.row is not None else ()) + self.other_rows

    def __str__(self) -> str:
        text = self.file
        rows = self.rows
        if len(rows) == 1:
            text += f" row {rows[0]}"
        elif rows:
            text += " rows " + ", ".join(map(str, rows[:-1])) + f" and {rows[-1]}"
        if self.key:
            text += f" ({self.key})"
        if self.field:
            text += f", {self.field}"
        return f"{text}: {self.message}"
