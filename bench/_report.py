"""Rows of results, and the table, JSON and Markdown made from them.

Every row compares dbswap (the *subject*) with a *baseline* measured in the
same run; ``ratio`` is subject/baseline, so 1.0 means "costs the same" and
lower is better. Absolute times are shown too, but the ratio is the figure.
Rows in another ``unit`` say so: ``req/s`` (a throughput: there, higher is
better) and ``count`` (e.g. failed requests: subject = how many, baseline =
out of how many, ratio = the fraction).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ._measure import Ratio


@dataclass
class Row:
    suite: str
    key: str
    label: str
    subject: float | None = None  # seconds
    baseline: float | None = None  # seconds
    baseline_label: str = ""
    ratio: float | None = None
    low: float | None = None
    high: float | None = None
    best: float | None = None  # ratio of the fastest rounds, when rounds were paired
    target: str = ""
    ok: bool | None = None
    note: str = ""
    skipped: str | None = None
    unit: str = "s"  # of subject and baseline: "s", "req/s" or "count"

    @classmethod
    def of(
        cls,
        suite: str,
        key: str,
        label: str,
        result: Ratio,
        baseline_label: str,
        *,
        at_most: float | None = None,
        note: str = "",
    ) -> Row:
        """A row from a paired comparison; ``at_most`` is the target ratio, if any."""
        return cls(
            suite=suite,
            key=key,
            label=label,
            subject=result.subject,
            baseline=result.baseline,
            baseline_label=baseline_label,
            ratio=result.ratio,
            low=result.low,
            high=result.high,
            best=result.best,
            target=f"<= {at_most:g}" if at_most is not None else "",
            ok=None if at_most is None else result.ratio <= at_most,
            note=note,
        )

    @classmethod
    def skip(cls, suite: str, key: str, label: str, reason: str) -> Row:
        return cls(suite=suite, key=key, label=label, skipped=reason)


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        payload = {**self.meta, "rows": [asdict(r) for r in self.rows], "notes": self.notes}
        payload.update(self.extra)
        return json.dumps(payload, indent=2, sort_keys=True, default=str)


def fmt_time(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale * 0.9995:  # what rounds up to 1000 of a unit is 1 of the next
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds * 1e9:.0f} ns"


def fmt_value(value: float | None, unit: str) -> str:
    if unit == "s":
        return fmt_time(value)
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:,.0f}" if unit == "count" else f"{value:,.0f} {unit}"


def fmt_ratio(row: Row) -> str:
    if row.ratio is None:
        return "-"
    digits = 3 if row.ratio >= 0.1 else 4
    text = f"{row.ratio:.{digits}f}"
    if row.low is not None and row.high is not None:
        text += f" [{row.low:.{digits}f}-{row.high:.{digits}f}]"
    return text


def _cells(row: Row) -> list[str]:
    if row.skipped is not None:
        return [row.key, row.label, "-", "-", "skipped", "", "", row.skipped]
    met = "" if row.ok is None else ("yes" if row.ok else "NO")
    baseline = f"{fmt_value(row.baseline, row.unit)} {row.baseline_label}".strip()
    best = "" if row.best is None else f"{row.best:.3f}"
    subject = fmt_value(row.subject, row.unit)
    cells = [row.key, row.label, subject, baseline, fmt_ratio(row), best]
    return [*cells, row.target, met]


HEADER = [
    "key",
    "measurement (dbswap)",
    "dbswap",
    "baseline",
    "ratio [95% CI]",
    "min/min",
    "target",
    "met",
]


def table(rows: Sequence[Row]) -> str:
    """A fixed-width text table, grouped by suite, with each row's note underneath."""
    cells = [_cells(r) for r in rows]
    widths = [max(len(c[i]) for c in [HEADER, *cells]) for i in range(len(HEADER))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(HEADER, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    suite = None
    for row, row_cells in zip(rows, cells, strict=True):
        if row.suite != suite:
            suite = row.suite
            lines.append(f"[{suite}]")
        lines.append("  ".join(c.ljust(w) for c, w in zip(row_cells, widths, strict=True)).rstrip())
        if row.note:
            lines.append(" " * (widths[0] + 2) + "^ " + row.note)
    return "\n".join(lines)


def markdown(rows: Iterable[Row], notes: Sequence[str]) -> str:
    lines = ["| " + " | ".join(HEADER) + " | note |", "|" + "---|" * (len(HEADER) + 1)]
    for row in rows:
        cells = [*_cells(row), row.note]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    if notes:
        lines += ["", *[f"- {n}" for n in notes]]
    return "\n".join(lines) + "\n"


def write(report: Report, directory: Path) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    json_path, md_path = directory / "results.json", directory / "results.md"
    json_path.write_text(report.to_json() + "\n", encoding="utf-8")
    md_path.write_text(markdown(report.rows, report.notes), encoding="utf-8")
    return json_path, md_path
