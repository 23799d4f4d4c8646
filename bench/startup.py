"""How long a ``dbswap`` command takes as a fresh process, against importing SQLAlchemy.

A script that switches every second needs a fast CLI. The floor while the CLI
needs SQLAlchemy is ``python -c "import sqlalchemy"``: every command is timed
as a new process, interleaved with that baseline, round after round.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from ._measure import Batch, interleave, paired
from ._report import Row
from ._workspace import Workspace

BASELINE = "python -c 'import sqlalchemy'"


def run(ws: Workspace) -> list[Row]:
    directory = ws.disk / "cli"
    directory.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "DBSWAP_"))}
    for name in ("local", "staging"):  # no production: `use` would ask for a confirmation
        path = directory / f"{name}.db"
        path.touch()
        env[f"DATABASE_URL_{name.upper()}"] = f"sqlite:///{path}"
    env["DBSWAP_RUNTIME_DIR"] = str(directory / "runtime")
    dbswap = str(Path(sys.executable).with_name("dbswap"))
    targets = itertools.cycle(["staging", "local"])  # every `use` really switches
    variants: dict[str, Batch] = {
        "baseline": _process(lambda: [sys.executable, "-c", "import sqlalchemy"], env, directory),
        "status": _process(lambda: [dbswap, "status"], env, directory),
        "history": _process(lambda: [dbswap, "history"], env, directory),
        "version": _process(lambda: [dbswap, "--version"], env, directory),
        "use": _process(lambda: [dbswap, "use", next(targets)], env, directory),
    }
    times = interleave(variants, rounds=ws.sizes.cli_rounds, batch_seconds=0.0, warmup=1, max_ops=1)
    rows = []
    for key, label, target in (
        ("status", "`dbswap status`", 1.5),
        ("history", "`dbswap history`", 1.5),
        ("version", "`dbswap --version`", 1.5),
        ("use", "`dbswap use` between two SQLite targets", 2.0),
    ):
        result = paired(times[key], times["baseline"])
        rows.append(Row.of("cli", f"cli.{key}", label, result, BASELINE, at_most=target))
    return rows


def _process(command: Callable[[], list[str]], env: dict[str, str], cwd: Path) -> Batch:
    def batch(n: int) -> float:
        started = time.perf_counter()
        for _ in range(n):
            subprocess.run(command(), env=env, cwd=cwd, stdout=subprocess.DEVNULL, check=True)
        return time.perf_counter() - started

    return batch
