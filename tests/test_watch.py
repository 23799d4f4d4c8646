"""Waking followers cheaply: the kernel's news reaches the thread that waits for it.

A process following one board has one inotify watcher: its own thread reads the
descriptor, with no reader thread in between. A second watcher in the process
(another board, a host's relay) starts one reader thread for all, and every
watcher still wakes for its own directory. Real directories, renames and threads,
in a fresh process each (the descriptor is per process).
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from dbswap import Switchboard
from dbswap._engines import _retirer
from dbswap._watch import Wakeup

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify")

SCRIPT = """
import os, sys, threading, time
from pathlib import Path
from dbswap._watch import DirectoryWatcher

def readers():
    return [t.name for t in threading.enumerate() if t.name == "dbswap-inotify"]

def wakes(watcher, directory, name):
    woken = []
    waiter = threading.Thread(target=lambda: woken.append(watcher.wait(5.0)))
    waiter.start()
    time.sleep(0.2)  # the waiter is in its wait
    started = time.monotonic()
    (directory / "tmp").write_text("x")
    os.rename(directory / "tmp", directory / name)
    waiter.join(6)
    return woken == [True] and time.monotonic() - started < 2.0

first, second = Path(sys.argv[1]), Path(sys.argv[2])
one = DirectoryWatcher(first, "state.json", lambda: False)
print("alone", readers(), wakes(one, first, "state.json"))
print("quiet", one.wait(0.2))  # nothing happened since: a timeout
print("other file", wakes(one, first, "other.json"))  # not its file: it times out
two = DirectoryWatcher(second, "state.json", lambda: False)
print("two", readers(), wakes(one, first, "state.json"), wakes(two, second, "state.json"))
"""


def test_a_lone_watcher_reads_the_kernel_itself_and_a_second_one_gets_a_reader(
    tmp_path: Path,
) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(SCRIPT), str(first), str(second)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.splitlines() == [
        "alone [] True",  # woken, by its own thread: no reader thread
        "quiet False",
        "other file False",
        "two ['dbswap-inotify'] True True",
    ], done.stderr


def test_a_wakeup_given_twice_wakes_once() -> None:
    wakeup = Wakeup()
    assert wakeup.wait(0.01) is False
    wakeup.set()
    wakeup.set()
    assert wakeup.wait(0.01) is True
    assert wakeup.wait(0.01) is False
    woken: list[bool] = []
    waiter = threading.Thread(target=lambda: woken.append(wakeup.wait(5.0)))
    waiter.start()
    time.sleep(0.05)
    wakeup.set()  # from another thread
    waiter.join(5)
    assert woken == [True]


def test_switching_back_and_forth_within_the_grace_lets_the_retiring_thread_sleep(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each switch cancels one retire and schedules another, later one: no wake-up."""
    urls = {}
    for name in ("local", "production"):
        sqlite3.connect(tmp_path / f"{name}.db").close()
        urls[name] = f"sqlite:///{tmp_path / name}.db"
    board = Switchboard(urls, runtime_dir=tmp_path / "rt", retire_grace=60)
    board.use("production")
    board.use("local")  # the thread runs, asleep until production's grace ends
    condition = _retirer._condition
    notified: list[int] = []
    real_notify = condition.notify

    def counting_notify(n: int = 1) -> None:
        notified.append(n)
        real_notify(n)

    monkeypatch.setattr(condition, "notify", counting_notify)
    for target in ["production", "local"] * 10:
        board.use(target)
    assert notified == []
    board.close()


MANY_FILES = """
import os, resource, sys, threading, time
from pathlib import Path
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(soft, 2048), hard), hard))
held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]  # an app's sockets, files...
from dbswap._watch import DirectoryWatcher
directory = Path(sys.argv[1])
watcher = DirectoryWatcher(directory, "state.json", lambda: False)
woken = []
waiter = threading.Thread(target=lambda: woken.append(watcher.wait(5.0)))
waiter.start()
time.sleep(0.2)
(directory / "tmp").write_text("x")
os.rename(directory / "tmp", directory / "state.json")
waiter.join(6)
print(max(held) > 1024, woken)
"""


def test_a_process_with_a_thousand_files_open_still_hears_the_kernel(tmp_path: Path) -> None:
    """Its inotify descriptor lands past ``select``'s limit (1024): it is polled, not selected."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(MANY_FILES), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.split() == ["True", "[True]"], done.stderr
