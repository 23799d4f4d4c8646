"""Under a test run, boards stay off the developer's shared state and off production.

A developer's dev server may be switched to production while their test suite
runs, and test suites empty tables. So a test run installs a guard
(``protect()``): the pytest plugin does it before pytest imports any conftest,
dbswap's ``manage.py test`` before Django's runner starts. The guard lives in
the process environment (``DBSWAP_TEST_GUARD``), so the processes a test
starts (``subprocess``, the app's CLI, ``manage.py``, pytest-xdist workers)
inherit it, and it holds by construction: every board built under it, however
(``from_env()``, its constructor, a settings object, an adapter), is guarded.

A guarded board whose runtime dir is a test's own (inside the test run's
temporary directories) is taken as given. Any other runtime dir (or Redis
state) is the shared state of a running app: the board gets the test run's
own runtime dir instead, starts on the default target, and refuses production
targets unless the run allows them (``--dbswap-allow-production``). A test
marked ``dbswap_shared_state`` lifts the guard while it runs (for the
processes it starts too).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

PRODUCTION = "production"
ENVIRONMENT = "DBSWAP_TEST_GUARD"  # JSON: {"runtime_dir", "roots", "allow_production"}


@dataclass(frozen=True)
class Guard:
    runtime_dir: Path  # the test run's own, shared by its processes
    roots: tuple[Path, ...]  # where tests keep their own files (their runtime dirs are theirs)
    allow_production: bool = False

    def replacement(self, runtime_dir: Path) -> Path | None:
        """The run's own runtime dir if ``runtime_dir`` is shared beyond the tests, else None."""
        resolved = Path(runtime_dir).resolve()
        if any(resolved.is_relative_to(root) for root in (self.runtime_dir, *self.roots)):
            return None
        return self.runtime_dir

    def forbidden(self) -> frozenset[str]:
        return frozenset() if self.allow_production else frozenset({PRODUCTION})

    def to_json(self) -> str:
        return json.dumps(
            {
                "runtime_dir": str(self.runtime_dir),
                "roots": [str(root) for root in self.roots],
                "allow_production": self.allow_production,
            }
        )


_parsed: tuple[str, Guard | None] = ("", None)  # the variable's value and its guard


def current() -> Guard | None:
    """The guard of this process, if a test run installed (or passed down) one."""
    global _parsed
    raw = os.environ.get(ENVIRONMENT, "")
    if raw == _parsed[0]:
        return _parsed[1]
    guard = _parse(raw) if raw else None
    _parsed = (raw, guard)
    return guard


def _parse(raw: str) -> Guard:
    try:
        data = json.loads(raw)
        return Guard(
            Path(data["runtime_dir"]),
            tuple(Path(root) for root in data["roots"]),
            bool(data["allow_production"]),
        )
    except (ValueError, KeyError, TypeError):
        # Somebody's test run set it: guard anyway, with a runtime dir of our own.
        return Guard(Path(tempfile.mkdtemp(prefix="dbswap-tests-")) / "runtime", ())


def protect(*, allow_production: bool = False, roots: tuple[Path, ...] = ()) -> Guard:
    """Guard this process and every process it starts from now on (see the module docstring).

    A guard passed down by a parent run keeps its runtime dir, so a test run and
    its workers share one state; ``allow_production`` is this run's own choice.
    """
    inherited = current()
    runtime_dir = (
        inherited.runtime_dir
        if inherited is not None
        else Path(tempfile.gettempdir()).resolve() / f"dbswap-tests-{os.getpid()}" / "runtime"
    )
    known = inherited.roots if inherited is not None else ()
    mine = tuple(dict.fromkeys([*known, *(Path(root).resolve() for root in roots)]))
    guard = Guard(runtime_dir, mine, allow_production)
    os.environ[ENVIRONMENT] = guard.to_json()
    return guard


def unprotect(previous: str | None) -> None:
    """Put back the variable as it was before ``protect()`` (``None``: unset)."""
    if previous is None:
        os.environ.pop(ENVIRONMENT, None)
    else:
        os.environ[ENVIRONMENT] = previous


def refusal(target: str) -> str:
    return (
        f"this test run would use the {target!r} target: under a test run, boards never "
        "touch production; run pytest with --dbswap-allow-production (manage.py test: "
        "--dbswap-allow-production) if a test really must"
    )
