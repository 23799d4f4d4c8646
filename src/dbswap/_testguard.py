"""Under pytest, boards built from the environment stay off the developer's shared state.

The pytest plugin installs a guard for the test session. ``Switchboard.from_env()``
asks it about the runtime dir the environment names: one inside the session's
temporary directory (a test's ``tmp_path``) belongs to the tests; any other is
the shared state of the developer's running app, and the board gets the
session's own runtime dir instead. It then starts on the default target whatever
the dev server is switched to, and refuses production targets unless pytest
runs with ``--dbswap-allow-production``. A test marked ``dbswap_shared_state``
asks for the shared state and gets it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

PRODUCTION = "production"


@dataclass
class Guard:
    runtime_dir: Path  # the session's own
    test_roots: Callable[[], tuple[Path, ...]]  # where tests keep their own files
    allow_production: bool = False
    suspended: bool = False  # a test marked dbswap_shared_state is running

    def replacement(self, runtime_dir: Path) -> Path | None:
        """The session's runtime dir if ``runtime_dir`` is shared beyond the tests, else None."""
        if self.suspended:
            return None
        resolved = runtime_dir.resolve()
        roots = (self.runtime_dir, *self.test_roots())
        if any(resolved.is_relative_to(root.resolve()) for root in roots):
            return None
        return self.runtime_dir

    def forbidden(self) -> frozenset[str]:
        return frozenset() if self.allow_production else frozenset({PRODUCTION})


_guard: Guard | None = None


def install(guard: Guard | None) -> None:
    global _guard
    _guard = guard


def current() -> Guard | None:
    return _guard


def refusal(target: str) -> str:
    return (
        f"this test session would use the {target!r} target: under pytest, boards built from "
        "the environment never touch production; run pytest with --dbswap-allow-production "
        "if a test really must"
    )
