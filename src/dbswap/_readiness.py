"""The readiness answer for load balancers: does the active target answer a check?

At most one check per ``cache_seconds``, whatever the number of probes: the
first probe after the answer expired runs it (bounded by ``timeout``) while
the others wait for its answer, so a probe storm cannot load the database.
The answer names the active target and says whether it answered, with a
generic reason: never a URL, a driver's message or a secret (the masked reason
goes to the ``dbswap`` logger, the health-check metric and span).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._errors import ConfigError, DBSwapError
from ._targets import check_seconds

if TYPE_CHECKING:
    from ._switchboard import Switchboard

logger = logging.getLogger("dbswap")

READINESS_PATH = "/healthz/database"
NOT_ANSWERING = "the active database did not answer its check"
UNKNOWN = "the active target is unknown"
HEADERS = {"Cache-Control": "no-store"}


@dataclass(frozen=True)
class Answer:
    """An HTTP status (200 or 503) and its JSON body."""

    status: int
    body: dict[str, Any] = field(default_factory=dict)


class Readiness:
    """``probe()`` answers 200 ``{"target", "ok": true}`` or 503, checking at most once per
    ``cache_seconds`` (0: every probe checks). ``checks`` counts the checks made."""

    def __init__(
        self,
        board: Switchboard,
        *,
        cache_seconds: float = 1.0,
        timeout: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not (isinstance(cache_seconds, (int, float)) and 0 <= cache_seconds <= 3600):  # nan too
            raise ConfigError(f"cache_seconds must be 0 to 3600 seconds, not {cache_seconds!r}")
        self.board = board
        self.cache_seconds = float(cache_seconds)
        self.timeout = check_seconds(timeout, "timeout")
        self.checks = 0
        self._clock = clock
        self._lock = threading.Lock()  # one check at a time; the others wait for its answer
        self._cached: tuple[tuple[str, bool], float, Answer] | None = None

    def cached(self) -> Answer | None:
        """The answer if one is fresh for the active target, without waiting (else None)."""
        cached = self._cached
        if cached is None or self._clock() >= cached[1]:
            return None
        try:
            current = self.board._current()
        except DBSwapError:
            return None
        return cached[2] if cached[0] == current else None

    def probe(self) -> Answer:
        board = self.board
        try:
            target, read_only = board._current()
        except DBSwapError:  # e.g. Redis never answered and this host knows no state
            return Answer(503, {"target": None, "ok": False, "reason": UNKNOWN})
        with self._lock:
            cached = self._cached
            if (
                cached is not None
                and cached[0] == (target, read_only)
                and self._clock() < cached[1]
            ):
                return cached[2]
            health = board._check(
                board.targets[target], self.timeout, False, read_only, on_app_loop=True
            )
            self.checks += 1
            if health.ok:
                answer = Answer(200, {"target": target, "ok": True})
            else:
                answer = Answer(503, {"target": target, "ok": False, "reason": NOT_ANSWERING})
                if cached is None or cached[2].status == 200 or cached[0][0] != target:
                    logger.warning("readiness: %r failed its check: %s", target, health.error)
            self._cached = ((target, read_only), self._clock() + self.cache_seconds, answer)
            return answer
