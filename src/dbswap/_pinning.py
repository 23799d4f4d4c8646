"""Pins that decide a process's target before the shared state is consulted.

- A *process pin*: ``dbswap run TARGET -- COMMAND`` starts COMMAND with
  ``DBSWAP_PINNED_TARGET=TARGET`` in its environment, so every board in that
  process tree uses TARGET whatever the shared state says, and nobody else
  moves. Every board reads this one variable from the process environment,
  however it was built (``from_env()`` or its constructor): the pin is a fact
  about the process, not a setting of one board.
- A *block pin*: ``with board.pinned("production"):`` does the same for the
  code running in that block (a ``contextvars`` value, so other threads and
  other asyncio tasks keep the shared target).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

PIN_VARIABLE = "DBSWAP_PINNED_TARGET"


def process_pin(environ: Mapping[str, str] | None = None) -> str | None:
    """The target this process is pinned to by ``dbswap run``, if any."""
    value = (os.environ if environ is None else environ).get(PIN_VARIABLE, "")
    return value.strip().lower() or None


def pinned_environment(target: str, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a command run pinned to ``target``."""
    return {**(os.environ if environ is None else environ), PIN_VARIABLE: target}
