"""The benchmarks still run: ``python -m bench --quick`` end to end, in a few seconds.

Not a performance test: it checks that every expected row is there and that
every ratio is a finite positive number, never that a target is met. The
exception is correctness: the fleet's failed and wrong-target counts are 0.
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # bench/ lives beside src/, outside the installed package

from bench._databases import Postgres, redis_missing  # noqa: E402
from bench._gunicorn import gunicorn_missing  # noqa: E402
from bench._measure import median_interval, paired, percentile  # noqa: E402
from bench._server import demo_missing  # noqa: E402
from bench.cli import main  # noqa: E402
from bench.django_app import django_missing  # noqa: E402

POSTGRES_ROWS = {
    "1b.get.pg",
    "1c.core.pg",
    "1f.get.pg.read-only",
    "1d.get.pg-async",
    "2.use.pg.p50",
    "2.use.pg.p99",
    "2.use-minus-check.pg.p99",
}
HTTP_ROWS = {
    "2.http.p50",
    "2.http.p99",
    "3.switch-vs-restart",
    "3.switch-vs-restart.cold",
    "t.http.after",
    "t.http.worst",
    "t.http.first",
}
FLEET_LOAD_ROWS = {"f.rps", "f.rps.grace", "f.latency.p99", "f.failed", "f.wrong-target"}
DJANGO_ROWS = {
    "d.django.p50",
    "d.django.p99",
    "d.django.switching.p50",
    "d.django.switching.p99",
    "d.django.failed",
}
COUNT_ROWS = {
    "f.failed",
    "f.wrong-target",
    "d.django.failed",
    "h.hosts.missed",
}  # how many (must be 0); out of
REDIS_ROWS = {
    "f.propagation.redis.p50",
    "f.propagation.redis.p99",
    "h.hosts.p99",
    "h.hosts.missed",
    "h.follower.cpu",
}
EXPECTED_ROWS = (
    POSTGRES_ROWS
    | HTTP_ROWS
    | FLEET_LOAD_ROWS
    | REDIS_ROWS
    | DJANGO_ROWS
    | {
        "1a.get.sqlite-mem",
        "1a.get.sqlite-mem.no-state",
        "1c.core.sqlite-mem",
        "1a.get.sqlite-file",
        "1e.get.sqlite-file.own-engine",
        "1d.get.aiosqlite",
        "2.use.sqlite.p50",
        "2.use.sqlite.p99",
        "2.use-minus-check.sqlite.p99",
        "2.use.sqlite.tmpfs.p50",
        "2.use.sqlite.tmpfs.p99",
        "2.use-minus-check.sqlite.tmpfs.p99",
        "4.targets.2.get",
        "4.targets.10.get",
        "4.targets.50.get",
        "4.targets.10.create",
        "4.targets.50.create",
        "4.threads.1",
        "4.threads.4",
        "4.threads.16",
        "4.threads.1.create",
        "4.threads.4.create",
        "4.threads.16.create",
        "h.counter",
        "h.current",
        "h.current.stat",
        "h.current.nofile",
        "h.active",
        "h.fast",
        "h.pin",
        "h.get_bind",
        "h.session",
        "h.maker",
        "h.timebox",
        "t.session.after",
        "t.session.worst",
        "t.session.first",
        "f.propagation.file.p50",
        "f.propagation.file.p99",
        "cli.status",
        "cli.history",
        "cli.version",
        "cli.use",
    }
)


def _postgres_reachable() -> bool:
    server, _ = Postgres.open()
    if server is None:
        return False
    server.close()
    return True


@pytest.mark.timeout(120)
@pytest.mark.dbswap_shared_state  # the benchmarks' boards use scratch runtime dirs of their own
def test_quick_run_has_every_row_with_a_finite_positive_ratio(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One quick run of every suite: the table, the JSON, the Markdown and the plot."""
    png = tmp_path / "plot.png"
    assert main(["--quick", "--results-dir", str(tmp_path), "--png", str(png)]) == 0
    printed = capsys.readouterr().out
    rows = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))["rows"]
    keys = [row["key"] for row in rows]
    assert sorted(keys) == sorted(EXPECTED_ROWS)  # each once
    may_skip = (
        set() if _postgres_reachable() else POSTGRES_ROWS | FLEET_LOAD_ROWS | DJANGO_ROWS
    ) | (HTTP_ROWS if demo_missing() else set())
    may_skip |= (FLEET_LOAD_ROWS if gunicorn_missing() else set()) | (
        REDIS_ROWS if redis_missing() else set()
    )
    may_skip |= DJANGO_ROWS if django_missing() else set()
    for row in rows:
        assert row["key"] in printed
        if row["skipped"] is not None:
            assert row["key"] in may_skip, row
            continue
        if row["key"] in COUNT_ROWS:
            assert row["unit"] == "count" and row["subject"] == 0 and row["ok"] is True, row
            assert math.isfinite(row["baseline"]) and row["baseline"] > 0, row
            continue
        for field in ("ratio", "subject", "baseline"):
            value = row[field]
            assert isinstance(value, float) and math.isfinite(value) and value > 0, (field, row)
    markdown = (tmp_path / "results.md").read_text(encoding="utf-8")
    assert all(f"| {key} |" in markdown for key in keys)
    if importlib.util.find_spec("matplotlib") is not None:
        assert png.read_bytes().startswith(b"\x89PNG")


def test_paired_ratio_is_the_median_of_per_round_ratios() -> None:
    """A drift that hits both sides of a round equally cancels out of the ratio."""
    baseline = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0]
    result = paired([b * 1.01 for b in baseline], baseline)
    assert result.ratio == pytest.approx(1.01)
    assert result.low == pytest.approx(1.01) and result.high == pytest.approx(1.01)
    assert median_interval([5.0, 1.0, 3.0]) == (3.0, 1.0, 5.0)
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0], 50) == 3.0
    assert percentile(list(map(float, range(101))), 99) == pytest.approx(99.0)


def test_an_unknown_suite_is_refused_with_the_choices() -> None:
    with pytest.raises(SystemExit, match="choose from overhead"):
        main(["--only", "nope"])
