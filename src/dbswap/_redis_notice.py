"""A production lock announced in Redis: a notice key with a lease, renewed by its own thread.

A process started with ``DBSWAP_ENV=production`` serves production whatever
the state says, so every host must refuse switches while it lives. It keeps a
notice key (``<prefix>:production-lock:<id>``) whose lease (``LOCK_LEASE``,
30 s by default) is renewed every tenth of a lease by a thread that does
nothing else: a killed process's notice lapses within one lease, and a pause
shorter than a lease (a GC pause, a busy event loop, a suspended VM) keeps it.
A pause longer than that lets it lapse, and another host could switch
meanwhile: on resume the renewal finds it gone, logs an error saying for how
long it was, and announces it again.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from typing import Any

logger = logging.getLogger("dbswap")

LOCK_LEASE = 30.0  # seconds a notice outlives its last renewal
RENEWALS_PER_LEASE = 10

# Renew our own notice; if it is gone (lapsed, or Redis lost it), write it again and say so.
_RENEW = """
local kept = redis.call('get', KEYS[1]) == ARGV[1]
redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('sadd', KEYS[2], ARGV[3])
if kept then return 1 end
return 0
"""


class LockNotice:
    """This process's notice: announced once, renewed in the background, withdrawn on close."""

    def __init__(
        self,
        client: Any,
        prefix: str,
        reason: str,
        lease: float,
        errors: tuple[type[BaseException], ...],
    ) -> None:
        self.reason, self.lease = reason, lease
        self._client, self._prefix, self._errors = client, prefix, errors
        self._notices_key = f"{prefix}:production-locks"
        self._renew_script = client.register_script(_RENEW)
        self._id = uuid.uuid4().hex
        self._value = json.dumps(
            {"reason": reason, "pid": os.getpid(), "host": socket.gethostname(), "lease": lease}
        )
        self._renewed: float | None = None  # monotonic time of the last renewal Redis took
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def key(self) -> str:
        return f"{self._prefix}:production-lock:{self._id}"

    def start(self) -> None:
        """Announce now (an outage is logged; the thread keeps trying), then keep renewing."""
        try:
            self.renew()
        except self._errors as exc:
            logger.error(
                "cannot announce the production lock in Redis yet (%s); retrying in the background",
                type(exc).__name__,
            )
        self._thread = threading.Thread(target=self._keep, name="dbswap-lock-notice", daemon=True)
        self._thread.start()

    def renew(self) -> None:
        now = time.monotonic()
        args = [self._value, int(self.lease * 1000), self._id]
        kept = self._renew_script(keys=[self.key, self._notices_key], args=args)
        renewed, self._renewed = self._renewed, now
        if renewed is not None and not kept:
            logger.error(
                "the production lock of this process (pid %d) had lapsed: renewed %.1f s ago, "
                "its lease is %g s (a pause, a frozen VM, or Redis lost it); meanwhile other "
                "processes sharing this state could switch while this one served production. "
                "Announced again; check `dbswap history`",
                os.getpid(),
                now - renewed,
                self.lease,
            )

    def _keep(self) -> None:
        every = max(self.lease / RENEWALS_PER_LEASE, 0.05)
        while not self._stop.wait(every):
            try:
                self.renew()
            except self._errors:
                continue  # Redis is away: the store says so; try again next time
            except Exception:  # the thread must go on, whatever happens
                logger.exception("renewing the production lock failed")

    def withdraw(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2)
        try:
            pipe = self._client.pipeline(transaction=False)
            pipe.delete(self.key)
            pipe.srem(self._notices_key, self._id)
            pipe.execute()
        except self._errors:
            pass  # it lapses within one lease

    def for_child(self) -> LockNotice:
        """After a fork: the child's own notice (its own pid), renewed by its own thread."""
        notice = LockNotice(self._client, self._prefix, self.reason, self.lease, self._errors)
        notice.start()
        return notice
