"""The persisted active target: a small JSON file, written atomically, shared by processes.

Readers are cheap: ``current()`` compares a 64-bit generation counter,
``db-target.gen``, memory-mapped by every process of the host, with the
value it last saw. Writers bump it after replacing the state and before
``use()`` returns; only then does a reader ``stat()`` the file (and re-read
it if its identity changed). Readers also ``stat()`` at least every
``REVALIDATE`` seconds, which bounds staleness when no bump comes (a writer
killed between the replace and the bump, a hand-edited file).
Writers hold a lock file beside the state (threads and processes), write a
temporary file in the same directory and fsync it (``use()`` does this while
the health check runs), then ``os.replace`` it, so a crash at any instant
leaves the old or the new state, never a torn one.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import math
import mmap
import os
import sys
import threading
import time
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

if sys.platform == "win32":  # pragma: no cover - CI runs on Linux
    from filelock import FileLock, Timeout
else:
    import fcntl

from ._errors import SwitchLocked
from ._files import NOT_A_LINK, link_refused, open_file, open_in_dir, read_file, replace_quickly
from ._watch import DirectoryWatcher, Watcher

logger = logging.getLogger("dbswap")

STATE_FILE = "db-target.json"
COUNTER_FILE = "db-target.gen"
LOCK_NOTICE_FILE = "db-target.production-lock"  # flocked (shared) by every locked process
REVOKED_FILE = "db-previews.revoked"  # "<token> <until>" lines: previews stopped early
FOLLOWERS_DIR = "followers"  # one file per following process, flocked while it lives
MAX_REVOKED_BYTES = 1 << 20
REVALIDATE = 1.0  # seconds: readers stat() at least this often, bump or not
MAX_STATE_BYTES = 65536  # a real state is ~150 bytes: anything far bigger is garbage
STATE_MODE = 0o644  # readable by an app that runs as another user than the switcher
_TEMPORARY = (".db-target.", ".tmp")  # prefix and suffix of the files write() replaces with
LOCK_POLL = 0.005  # seconds between two tries of a lock file another process holds


@dataclass(frozen=True)
class State:
    """What is active, since which committed switch, and who made it."""

    target: str
    generation: int = 0
    switched_at: str | None = None
    switched_by: str | None = None
    read_only: bool | None = None  # None: the target's default (DBSWAP_READONLY)
    # A time-boxed switch (see _timebox): when it ends (UTC, as switched_at) and where it returns.
    expires_at: str | None = None
    return_to: str | None = None

    def to_json(self) -> str:
        data: dict[str, object] = {
            "generation": self.generation,
            "read_only": self.read_only,
            "switched_at": self.switched_at,
            "switched_by": self.switched_by,
            "target": self.target,
        }
        if self.expires_at is not None:  # no time limit: the file reads as before they existed
            data["expires_at"], data["return_to"] = self.expires_at, self.return_to
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> State:
        """Parse a state file; ``ValueError`` with a short reason if it is not one."""
        try:
            data: Any = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not JSON ({exc.msg})") from None
        except RecursionError:  # e.g. "[" * 100000: the parser recurses per level
            raise ValueError("JSON nested too deeply") from None
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        target, generation = data.get("target"), data.get("generation", 0)
        if not isinstance(target, str) or not target:
            raise ValueError("no 'target' string")
        if not isinstance(generation, int) or isinstance(generation, bool) or generation < 0:
            raise ValueError("'generation' is not a non-negative integer")
        read_only = data.get("read_only")
        if read_only is not None and not isinstance(read_only, bool):
            raise ValueError("'read_only' is not true, false or null")
        at, by = data.get("switched_at"), data.get("switched_by")
        expires_at, return_to = data.get("expires_at"), data.get("return_to")
        if (expires_at is None) != (return_to is None):
            raise ValueError("'expires_at' and 'return_to' go together")
        if expires_at is not None:
            if not isinstance(return_to, str) or not return_to:
                raise ValueError("'return_to' is not a target name")
            try:
                parse_utc(expires_at)
            except (TypeError, ValueError):
                raise ValueError("'expires_at' is not a UTC time") from None
        return cls(
            target=target,
            generation=generation,
            switched_at=at if isinstance(at, str) else None,
            switched_by=by if isinstance(by, str) else None,
            read_only=read_only,
            expires_at=expires_at,
            return_to=return_to,
        )


class StateUnreadable(ValueError):
    """The stored state exists but cannot be used (the next switch rewrites it)."""


def utc_now() -> str:
    return utc_text(datetime.now(timezone.utc))


def utc_text(moment: datetime) -> str:
    """``2025-01-31T12:00:00.000Z``: how the state writes a time."""
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_utc(text: str) -> float:
    """A time the state wrote, as seconds since the epoch; ValueError if it is not one."""
    if not isinstance(text, str) or len(text) > 40:
        raise ValueError("not a time")
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))  # Python 3.10 has no "Z"
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


Signal = memoryview  # one unsigned 64-bit item: see StateStore.signal()


class StateStore(Protocol):
    """Where the active target lives. The file store is the default."""

    def current(self) -> State | None:
        """The committed state, cheaply; None when missing or unreadable.

        A store that can lose its state (Redis) returns the last one it saw instead,
        and raises a ``DBSwapError`` when it has none to give and cannot ask.
        """

    def signal(self) -> tuple[Signal, float] | None:
        """What lets a caller skip ``current()``: (stamp, monotonic deadline).

        ``stamp[0]`` changes whenever ``current()`` may return something new;
        until the deadline, a state read after it is still current while it
        is unchanged. None: call ``current()``.
        """

    def lock(self, timeout: float) -> contextlib.AbstractContextManager[None]:
        """Serialise switches across threads and processes."""

    def read(self) -> State | None:
        """The committed state read afresh (call while holding the lock).

        None when there is none yet; ``StateUnreadable`` when it is garbage.
        """

    def stage(self, state: State) -> None:
        """Prepare ``write(state)`` while the health check runs; never raises (holding the lock).

        ``write()`` of the same state finishes it, ``unstage()`` drops it.
        """

    def unstage(self) -> None:
        """Drop what ``stage()`` prepared: the switch does not happen."""

    def write(self, state: State) -> None:
        """Commit a new state (call while holding the lock)."""

    def describe(self) -> str:
        """Where the state lives, for messages."""

    def trouble(self) -> str | None:
        """Why this process could not confirm the shared state lately; None if it could."""

    def announce_lock(self, reason: str) -> None:
        """This process serves production whatever the state: tell every process sharing it.

        Held until ``close()`` or the process's death (even by SIGKILL).
        """

    def lock_holder(self) -> str | None:
        """The reason of a live process's production lock on this state, if one holds it."""

    def revoke(self, token: str, until: float) -> None:
        """Every process sharing the state refuses ``token`` from now until ``until``
        (seconds since the epoch): a stopped preview's cookie."""

    def revoked(self, token: str) -> bool:
        """Whether ``token`` was revoked (True too when that cannot be told)."""

    def watcher(self) -> Watcher:
        """What a follower thread waits on: woken when the state may have changed."""

    def revalidate(self) -> None:
        """The next ``current()`` reads the store afresh (a watcher woke us)."""

    def maintain(self) -> None:
        """Chores of a process that follows the state (its follower thread, every second)."""

    def publish_follower(self, ident: str, record: str) -> None:
        """This process follows the state: ``record`` (JSON) says how, until it ends."""

    def withdraw_follower(self, ident: str) -> None:
        """This process no longer follows the state."""

    def followers(self) -> list[str] | None:
        """The records of every live follower (JSON); None: cannot tell right now."""

    def share_audit(self, line: str) -> None:
        """Keep an audit line where every host sharing the state reads it (or do nothing)."""

    def shared_audit(self, limit: int | None) -> list[str] | None:
        """The newest ``limit`` shared audit lines, newest first; None: not kept here."""

    def close(self) -> None:
        """Release background resources (threads, connections)."""


class GenerationCounter:
    """Eight bytes in a file, mapped shared: a write is seen by every process of the host."""

    SIZE = 8

    def __init__(self, path: Path) -> None:
        fd = open_file(path, os.O_RDWR | os.O_CREAT)
        try:
            if os.fstat(fd).st_size < self.SIZE:
                os.ftruncate(fd, self.SIZE)  # zeros; two racing creators both leave zeros
            self._map = mmap.mmap(fd, self.SIZE)
        finally:
            os.close(fd)
        # Indexing this gives the value as an int, with no bytes object made: the hot path.
        self.view = memoryview(self._map).cast("Q")

    def read(self) -> int:
        return self.view[0]

    def bump(self) -> None:
        """Only under the switch lock: one writer at a time."""
        self.view[0] = (self.view[0] + 1) % 2**64

    def close(self) -> None:
        self.view.release()
        self._map.close()


class FileStateStore:
    """``<runtime dir>/db-target.json`` with a lock file beside it."""

    def __init__(self, runtime_dir: str | os.PathLike[str], *, durable: bool = True) -> None:
        """``durable=False``: no fsync (a host's copy of a state Redis keeps: ``_relay``)."""
        self.runtime_dir = Path(runtime_dir)
        self.durable = durable
        self.path = self.runtime_dir / STATE_FILE
        self._thread_lock = threading.Lock()
        # (file identity, parsed state), swapped as one object so threads never mix two reads.
        self._snapshot: tuple[tuple[int, int, int, int] | None, State | None] = (None, None)
        self._warned_about: tuple[int, int, int, int] | None = None
        self._counter: GenerationCounter | None = None
        self._counter_retry = 0.0  # monotonic time before which opening it is not retried
        # (counter value, monotonic time of the stat, state): the fast path, one tuple.
        self._fast: tuple[int | None, float, State | None] = (None, 0.0, None)
        self._staged: tuple[State, str] | None = None  # a state and its fsynced temporary file
        self._trouble: str | None = None  # why the state last read could not be used
        self._lock_notice: int | None = None  # descriptor of our flocked lock notice
        self._counter_refused = False  # the counter is a planted link (said once)
        self._revoked: tuple[tuple[int, int, int], frozenset[str]] | None = None
        self._presence: dict[str, int] = {}  # this process's follower files (descriptors)
        self._presence_sizes: dict[str, int] = {}  # and the length last written to each

    def describe(self) -> str:
        return str(self.path)

    def trouble(self) -> str | None:
        """Why the state could not be read, as of the last read (None: it could)."""
        return self._trouble

    def revoke(self, token: str, until: float) -> None:
        self.runtime_dir.mkdir(parents=True, exist_ok=True)
        path = self.runtime_dir / REVOKED_FILE
        fd = open_file(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, STATE_MODE)
        try:
            os.write(fd, f"{token} {math.ceil(until)}\n".encode("ascii"))
        finally:
            os.close(fd)

    def revoked(self, token: str) -> bool:
        path = self.runtime_dir / REVOKED_FILE
        try:
            st = os.stat(path)
            identity = (st.st_ino, st.st_size, st.st_mtime_ns)
            known = self._revoked
            if known is None or known[0] != identity:
                lines = read_file(path, MAX_REVOKED_BYTES).decode("ascii", "replace").splitlines()
                now = time.time()
                live = (line.split(" ") for line in lines)
                tokens = frozenset(p[0] for p in live if len(p) == 2 and _after(p[1], now))
                known = self._revoked = (identity, tokens)
        except FileNotFoundError:
            return False
        except OSError:
            return True  # cannot tell (a planted link, no permission): refuse the token
        return token in known[1]

    def watcher(self) -> Watcher:
        self.runtime_dir.mkdir(parents=True, exist_ok=True)
        last = [self._stamp()]

        def changed() -> bool:
            now = self._stamp()
            if now == last[0]:
                return False
            last[0] = now
            return True

        return DirectoryWatcher(self.runtime_dir, STATE_FILE, changed)

    def _stamp(self) -> int | None:
        counter = self._counter or self._open_counter()
        return counter.read() if counter is not None else None

    def revalidate(self) -> None:
        self._fast = (None, 0.0, None)

    def maintain(self) -> None:
        return None

    def publish_follower(self, ident: str, record: str) -> None:
        if sys.platform == "win32":  # pragma: no cover - no flock: followers are not counted
            return
        fd = self._presence.get(ident)
        if fd is None:
            directory = self.runtime_dir / FOLLOWERS_DIR
            directory.mkdir(parents=True, exist_ok=True)
            # Locked before it has its name: a reader never finds it free and removes it.
            temporary = directory / f".{ident}.tmp"
            fd = open_file(temporary, os.O_RDWR | os.O_CREAT | os.O_TRUNC, STATE_MODE)
            fcntl.flock(fd, fcntl.LOCK_SH)  # held until this process ends, SIGKILL or not
            os.replace(temporary, directory / f"{ident}.json")
            self._presence[ident] = fd
            _with_presence.add(self)
        data = record.encode("utf-8")
        if os.pwrite(fd, data, 0) != len(data) or len(data) < self._presence_sizes.get(ident, 0):
            os.ftruncate(fd, len(data))  # shorter than before (a record not padded)
        self._presence_sizes[ident] = len(data)

    def withdraw_follower(self, ident: str) -> None:
        fd = self._presence.pop(ident, None)
        if fd is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.runtime_dir / FOLLOWERS_DIR / f"{ident}.json")
            os.close(fd)

    def followers(self) -> list[str] | None:
        if sys.platform == "win32":  # pragma: no cover
            return None
        try:
            entries = list(os.scandir(self.runtime_dir / FOLLOWERS_DIR))
        except FileNotFoundError:
            return []
        except OSError:
            return None
        records = []
        for entry in entries:
            if not entry.name.endswith(".json"):
                continue
            try:
                fd = open_file(entry.path, os.O_RDONLY)
            except OSError:
                continue
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:  # its process holds it: alive
                    records.append(os.pread(fd, 4096, 0).decode("utf-8", "replace"))
                    continue
                with contextlib.suppress(OSError):  # nobody holds it: its process is gone
                    os.unlink(entry.path)
            finally:
                os.close(fd)
        return records

    def share_audit(self, line: str) -> None:
        return None  # one host: the audit file beside the state is the whole trail

    def shared_audit(self, limit: int | None) -> list[str] | None:
        return None

    def close(self) -> None:
        counter, self._counter = self._counter, None
        if counter is not None:
            counter.close()
        notice, self._lock_notice = self._lock_notice, None
        if notice is not None:
            os.close(notice)  # releases our share of the lock
        for ident in list(self._presence):
            self.withdraw_follower(ident)

    def announce_lock(self, reason: str) -> None:
        if sys.platform == "win32" or self._lock_notice is not None:  # pragma: no cover
            return
        self.runtime_dir.mkdir(parents=True, exist_ok=True)
        fd = open_file(self.runtime_dir / LOCK_NOTICE_FILE, os.O_RDWR | os.O_CREAT, STATE_MODE)
        fcntl.flock(fd, fcntl.LOCK_SH)  # shared: every locked process holds it at once
        notice = json.dumps({"reason": reason, "pid": os.getpid(), "host": _host()})
        os.ftruncate(fd, 0)
        os.pwrite(fd, notice.encode("utf-8"), 0)
        self._lock_notice = fd

    def lock_holder(self) -> str | None:
        if sys.platform == "win32":  # pragma: no cover
            return None
        try:
            fd = open_file(self.runtime_dir / LOCK_NOTICE_FILE, os.O_RDONLY)
        except FileNotFoundError:
            return None
        except OSError as exc:  # a planted link, no permission: nobody may switch on a guess
            return f"an unreadable production-lock notice ({exc.strerror})"
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # a live process holds it
                return _lock_reason(os.pread(fd, 4096, 0))
            fcntl.flock(fd, fcntl.LOCK_UN)  # nobody: a notice left by dead processes
            return None
        finally:
            os.close(fd)

    def signal(self) -> tuple[Signal, float] | None:
        counter = self._counter or self._open_counter()
        return None if counter is None else (counter.view, self._fast[1] + REVALIDATE)

    def current(self) -> State | None:
        counter = self._counter or self._open_counter()
        stamp = counter.read() if counter is not None else None
        known, checked, state = self._fast
        now = time.monotonic()
        if stamp is not None and stamp == known and now - checked < REVALIDATE:
            return state
        state = self._stat_current()
        self._fast = (stamp, now, state)
        return state

    def _open_counter(self) -> GenerationCounter | None:
        """Map the counter; without it (read-only dir...) every call stat()s, as before."""
        now = time.monotonic()
        if now < self._counter_retry:
            return None
        try:
            self.runtime_dir.mkdir(parents=True, exist_ok=True)
            self._counter = GenerationCounter(self.runtime_dir / COUNTER_FILE)
        except (OSError, ValueError) as exc:
            self._counter_retry = now + REVALIDATE
            if isinstance(exc, OSError) and exc.errno == errno.ELOOP and not self._counter_refused:
                self._counter_refused = True  # loud once: every session now stat()s the file
                logger.error("cannot use %s: %s", self.runtime_dir / COUNTER_FILE, exc.strerror)
        return self._counter

    def _stat_current(self) -> State | None:
        known_identity, known_state = self._snapshot
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._snapshot = (None, None)
            self._trouble = None
            return None
        except OSError as exc:
            self._warn_once(None, f"cannot stat it ({exc.strerror})")
            return known_state
        identity = (st.st_ino, st.st_mtime_ns, st.st_size, st.st_ctime_ns)
        if identity == known_identity:
            return known_state
        state = self._parse(identity)
        self._snapshot = (identity, state)
        return state

    def read(self) -> State | None:
        if self.path.is_symlink():  # replace() would swap the link for a file: refuse
            raise link_refused(self.path)
        self._remove_orphans()  # under the lock: no other writer is staging now
        self._snapshot = (None, None)  # force a fresh parse
        self._fast = (None, 0.0, None)
        state = self._stat_current()
        if state is None and self.path.exists():
            raise StateUnreadable(str(self.path))
        return state

    def _remove_orphans(self) -> None:
        """Temporary files of writers that died before their replace (SIGKILL...)."""
        staged = self._staged[1] if self._staged is not None else None
        with contextlib.suppress(OSError), os.scandir(self.runtime_dir) as entries:
            for entry in entries:
                name = entry.name
                orphan = name.startswith(_TEMPORARY[0]) and name.endswith(_TEMPORARY[1])
                if orphan and entry.path != staged:
                    with contextlib.suppress(OSError):
                        os.unlink(entry.path)

    def _parse(self, identity: tuple[int, int, int, int]) -> State | None:
        try:
            data = read_file(self.path, MAX_STATE_BYTES + 1)
        except FileNotFoundError:
            return None
        except OSError as exc:
            why = NOT_A_LINK if exc.errno == errno.ELOOP else exc.strerror
            self._warn_once(identity, f"cannot read it ({why or type(exc).__name__})")
            return None
        try:
            if len(data) > MAX_STATE_BYTES:
                raise ValueError(f"larger than {MAX_STATE_BYTES} bytes")
            state = State.from_json(data.decode("utf-8"))
        except UnicodeDecodeError:
            self._warn_once(identity, "not UTF-8 text")
            return None
        except ValueError as exc:
            self._warn_once(identity, str(exc))
            return None
        self._trouble = None
        return state

    def _warn_once(self, identity: tuple[int, int, int, int] | None, reason: str) -> None:
        self._trouble = reason
        if identity is None or identity != self._warned_about:
            self._warned_about = identity
            # An error, not a warning: this process now serves a target nobody chose.
            logger.error(
                "state file %s is unusable (%s); this process uses the default target until "
                "it can read a valid state (the next switch rewrites it)",
                self.path,
                reason,
            )

    @contextlib.contextmanager
    def lock(self, timeout: float) -> Iterator[None]:
        if not self._thread_lock.acquire(timeout=timeout):
            raise SwitchLocked("another switch is in progress in this process; try again")
        try:
            with _process_lock(Path(f"{self.path}.lock"), timeout):
                yield
        finally:
            self._thread_lock.release()

    def stage(self, state: State) -> None:
        """Write and fsync the temporary file ahead: only the replace is left for ``write()``."""
        self.unstage()
        with contextlib.suppress(OSError):  # write() tries again, and says why
            self._staged = (state, self._write_temporary(state))

    def unstage(self) -> None:
        staged, self._staged = self._staged, None
        if staged is not None:
            with contextlib.suppress(OSError):
                os.unlink(staged[1])

    def write(self, state: State) -> None:
        staged = self._staged
        if staged is not None and staged[0] == state:
            self._staged, tmp = None, staged[1]
        else:
            self.unstage()
            tmp = self._write_temporary(state)
        try:
            if self.durable:
                os.replace(tmp, self.path)
            else:  # a copy: without ext4's flush of a file renamed over another
                replace_quickly(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        # No fsync of the directory: the rename is atomic (the old state or the new one), and
        # a rename a power loss undoes is caught by the audit trail, whose line was synced
        # first: the next switch finds a line with no commit and voids it (``_audit``).
        self._snapshot = (None, None)
        with contextlib.suppress(OSError):  # under the lock: the file is the one just written
            st = os.stat(self.path)
            self._snapshot = ((st.st_ino, st.st_mtime_ns, st.st_size, st.st_ctime_ns), state)
            self._trouble = None
        self._fast = (None, 0.0, None)
        counter = self._counter or self._open_counter()
        if counter is not None:
            counter.bump()  # before use() returns: every process's next session re-checks

    def _write_temporary(self, state: State) -> str:
        """A temporary file beside the state, holding ``state``, fsynced: replace() commits it.

        Written under the lock, so a name of this process's own is enough; made anew
        (``O_EXCL``), so a file found there, a planted hard link even, is never written.
        """
        data = (state.to_json() + "\n").encode("utf-8")
        tmp = str(self.runtime_dir / f"{_TEMPORARY[0]}{os.getpid()}{_TEMPORARY[1]}")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
        try:
            fd = open_in_dir(tmp, flags, STATE_MODE)
        except FileExistsError:  # an earlier writer of this pid that died before its replace
            os.unlink(tmp)
            fd = open_in_dir(tmp, flags, STATE_MODE)
        try:
            os.fchmod(fd, STATE_MODE)  # whatever the umask: other users' apps read it
            os.write(fd, data)
            if self.durable:
                os.fsync(fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        finally:
            os.close(fd)
        return tmp


@contextlib.contextmanager
def _process_lock(path: Path, timeout: float) -> Iterator[None]:
    """Exclusive across processes, for at most ``timeout`` seconds of waiting.

    ``flock()`` directly: the kernel releases it when its holder dies, even by
    SIGKILL, and it costs ~4 us here where filelock's costs ~100 us (filelock,
    which takes the same kind of lock, only where there is no fcntl).
    """
    if sys.platform == "win32":  # pragma: no cover - CI runs on Linux
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(path), thread_local=False)
        try:
            lock.acquire(timeout=timeout)
        except Timeout:
            raise _held_elsewhere(path) from None
        try:
            yield
        finally:
            lock.release()
        return
    fd = open_in_dir(path, os.O_RDWR | os.O_CREAT)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise _held_elsewhere(path) from None
                time.sleep(LOCK_POLL)
        yield  # closing the descriptor releases the lock
    finally:
        os.close(fd)


def _held_elsewhere(path: Path) -> SwitchLocked:
    return SwitchLocked(f"another process holds the switch lock ({path.name}); try again")


_with_presence: weakref.WeakSet[FileStateStore] = weakref.WeakSet()


def _forget_presence_in_child() -> None:
    """A forked child shares its parent's follower files: close its copies, never unlink."""
    for store in list(_with_presence):
        for fd in store._presence.values():
            with contextlib.suppress(OSError):
                os.close(fd)  # the parent's lock stays: it holds the same open file
        store._presence.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_presence_in_child)


def _after(until: str, now: float) -> bool:
    try:
        return float(until) > now
    except ValueError:
        return False


def _lock_reason(raw: bytes) -> str:
    """What a lock notice says, as one line (its writer may have died mid-write)."""
    try:
        notice = json.loads(raw.decode("utf-8"))
        lease = notice.get("lease")  # Redis: it lapses that long after its holder stops
        held = f", lease {lease:g} s" if isinstance(lease, (int, float)) else ""
        return f"{notice['reason']} (pid {int(notice['pid'])} on {notice['host']}{held})"
    except (ValueError, KeyError, TypeError, AttributeError):
        return "DBSWAP_ENV=production"


def _host() -> str:
    import socket

    return socket.gethostname()
