"""One renderer for every table a command prints: aligned text, GitHub markdown, CSV or JSON.

A table is a list of row dicts and a sequence of `Column`s saying which keys to show, under which
header and with which number format; footnotes come from the columns' notes plus any lines the
caller adds. CSV and JSON carry every key of the rows (exact figures, measurement conditions),
not only the columns shown. Only the standard library is imported here.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

FORMATS = ("table", "markdown", "json", "csv")


@dataclass(frozen=True)
class Column:
    """How one key of the rows is shown: numbers (a non-empty `spec`) are right-aligned, text
    left-aligned; None shows as "-". `note` becomes a footnote; `code` sets markdown cells in
    backticks (names of Python objects)."""

    key: str  # the row key; also the CSV and JSON key
    header: str
    spec: str = ""  # format spec for numbers ("d", ".2f", "+.1f", ",d"); "" for text
    note: str = ""
    code: bool = False


def cell(value, spec: str = "") -> str:
    if value is None:
        return "-"
    return format(value, spec) if spec else str(value)


def render_table(
    rows: Sequence[Mapping],
    columns: Sequence[Column],
    markdown: bool = False,
    rule: bool = True,
) -> str:
    """Aligned text columns two spaces apart (a dashed rule under the header unless `rule` is
    False), or a GitHub markdown table with alignment markers."""
    cells = [[cell(r.get(c.key), c.spec) for c in columns] for r in rows]
    if markdown:
        cells = [[f"`{v}`" if c.code else v for v, c in zip(row, columns)] for row in cells]
    headers = [c.header for c in columns]
    widths = [max(len(h), *(len(row[i]) for row in cells)) for i, h in enumerate(headers)]
    right = [bool(c.spec) for c in columns]

    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if r else v.ljust(w) for v, w, r in zip(values, widths, right)]
        return "| " + " | ".join(parts) + " |" if markdown else "  ".join(parts).rstrip()

    if markdown:
        marks = [
            ("-" * (w + 1) + ":") if r else (":" + "-" * (w + 1)) for w, r in zip(widths, right)
        ]
        lines = [line(headers), "|" + "|".join(marks) + "|"]
    else:
        lines = [line(headers)] + (["  ".join("-" * w for w in widths)] if rule else [])
    return "\n".join([*lines, *(line(row) for row in cells)])


def render_csv(rows: Sequence[Mapping]) -> str:
    """Every key of the rows (the first row's order, then keys first seen later); None as ""."""
    keys = list(dict.fromkeys(k for row in rows for k in row))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=keys, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return out.getvalue().rstrip("\n")


def footnotes(columns: Sequence[Column], extra: Sequence[str] = (), markdown: bool = False) -> str:
    """The columns' notes, then `extra`, one per line (a markdown list in markdown)."""
    notes = [*(c.note for c in columns if c.note), *extra]
    return "\n".join(f"- {n}" if markdown else n for n in notes)


def render(
    rows: Sequence[Mapping],
    columns: Sequence[Column],
    fmt: str = "table",
    *,
    notes: Sequence[str] = (),
    rule: bool = True,
    json_key: str = "rows",
    json_extra: Mapping | None = None,
) -> str:
    """`rows` as `fmt` (one of FORMATS).

    table / markdown: the columns, a blank line, then the footnotes (column notes and `notes`).
    csv: every key of every row. json: {**json_extra, "columns": {key: note}, json_key: rows}.
    """
    if fmt == "json":
        described = {c.key: c.note for c in columns if c.note}
        payload = {**(json_extra or {}), "columns": described, json_key: list(rows)}
        return json.dumps(payload, indent=1)
    if fmt == "csv":
        return render_csv(rows)
    if fmt not in ("table", "markdown"):
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    markdown = fmt == "markdown"
    text = render_table(rows, columns, markdown=markdown, rule=rule)
    below = footnotes(columns, notes, markdown=markdown)
    return f"{text}\n\n{below}" if below else text
