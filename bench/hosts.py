"""Many hosts on one Redis: every host sees every switch, how fast, and what a follower pays.

Hosts: ``hosts`` simulated hosts, each a runtime dir with its relay
(``dbswap._relay``: one process per host follows Redis and copies the state to
the runtime dir), spread over ``host_processes`` processes (``bench._hosts_sim``).
This process switches ``host_switches`` times, one switch every
``host_spacing`` seconds, and stamps ``time.time()`` just before each ``use()``;
a (host, switch) latency is the time its copy got that generation minus the
stamp. Baseline in the same run: the same with ``BASELINE_HOSTS`` hosts. The
note gives a relay's CPU: the simulating processes' CPU time over an idle
stretch (per second) and over the switches beyond that (per switch), per host.

Follower CPU: a worker process of a host whose relay is another process (what
every worker but one is) follows ``cpu_switches`` switches ``cpu_spacing``
seconds apart; its process CPU time over them, minus the same process's over
an idle stretch as long, per switch. Baseline in the same run: a process that
follows Redis by itself (its own subscription, as every process did before
relays).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid

from dbswap import Switchboard
from dbswap._redis_state import RedisStateStore

from ._databases import REDIS, redis_forget, redis_missing, sqlite_file
from ._measure import percentile
from ._report import Row
from ._server import REPO
from ._workspace import Workspace

SUITE = "hosts"
BASELINE_HOSTS = 10
READY_TIMEOUT = 120.0
SETTLE = 2.0
STRAGGLERS = 5.0
KEYS = (
    ("h.hosts.p99", "a switch seen by every host of {n} (relays), p99 from use() start"),
    ("h.hosts.missed", "(host, switch) pairs not seen"),
    ("h.follower.cpu", "a worker's CPU per switch (its host's relay elsewhere)"),
)


def run(ws: Workspace) -> list[Row]:
    missing = redis_missing()
    sizes = ws.sizes
    if missing is not None:
        return [Row.skip(SUITE, key, label.format(n=sizes.hosts), missing) for key, label in KEYS]
    urls = {name: sqlite_file(ws.fast, f"hosts-{name}") for name in ("local", "production")}
    rows = _propagation_rows(ws, urls)
    rows.append(_cpu_row(ws, urls))
    return rows


# -- every host sees every switch --------------------------------------------------


def _propagation_rows(ws: Workspace, urls: dict[str, str]) -> list[Row]:
    sizes = ws.sizes
    many = _propagate(ws, urls, sizes.hosts, sizes.host_processes)
    few = _propagate(ws, urls, BASELINE_HOSTS, 1)
    p99, base = percentile(many.latencies, 99), percentile(few.latencies, 99)
    return [
        Row(
            suite=SUITE,
            key="h.hosts.p99",
            label=KEYS[0][1].format(n=sizes.hosts),
            subject=p99,
            baseline=base,
            baseline_label=f"same, {BASELINE_HOSTS} hosts",
            ratio=p99 / base,
            target="< 100 ms",
            ok=p99 < 0.1 and many.missed == 0,
            note=(
                f"{sizes.hosts} hosts in {sizes.host_processes} processes, "
                f"{sizes.host_switches} switches; p50 {percentile(many.latencies, 50) * 1000:.1f} "
                f"ms; Redis connections: {many.connections} ({many.connections / sizes.hosts:.2f} "
                f"per host); a relay's CPU: {many.switch_cpu * 1000:.2f} ms per switch, "
                f"{many.idle_cpu * 1000:.2f} ms a second idle"
            ),
        ),
        Row(
            suite=SUITE,
            key="h.hosts.missed",
            label=KEYS[1][1],
            subject=float(many.missed),
            baseline=float(sizes.hosts * sizes.host_switches),
            baseline_label="(host, switch) pairs",
            ratio=many.missed / (sizes.hosts * sizes.host_switches),
            target="0",
            ok=many.missed == 0,
            unit="count",
        ),
    ]


class _Spread:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.missed = 0
        self.connections = 0
        self.idle_cpu = 0.0  # a relay's CPU seconds per second while nothing happens
        self.switch_cpu = 0.0  # a relay's CPU seconds per switch beyond that


def _propagate(ws: Workspace, urls: dict[str, str], hosts: int, processes: int) -> _Spread:
    sizes = ws.sizes
    prefix = f"dbswap-bench-hosts-{uuid.uuid4().hex[:8]}"
    url = f"{REDIS}?prefix={prefix}"
    base = ws.disk / f"hosts-{hosts}-{uuid.uuid4().hex[:6]}"
    per = -(-hosts // processes)
    sims = []
    switcher = Switchboard(urls, runtime_dir=base / "switcher", store=RedisStateStore(url))
    spread = _Spread()
    base.mkdir(parents=True, exist_ok=True)
    log = (base / "hosts.log").open("w")  # what the simulated hosts logged
    try:
        for first in range(0, hosts, per):
            count = min(per, hosts - first)
            command = [sys.executable, "-m", "bench._hosts_sim", "--url", url]
            command += ["--base", str(base), "--hosts", str(count), "--first", str(first)]
            sims.append(
                subprocess.Popen(
                    command,
                    cwd=REPO,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=log,
                    text=True,
                )
            )
        deadline = time.monotonic() + READY_TIMEOUT
        for sim in sims:
            assert sim.stdout is not None
            line = sim.stdout.readline()
            if not line.startswith("ready") or time.monotonic() > deadline:
                raise RuntimeError(f"a simulated host process did not start: {line!r}")
        _wait_subscribed(prefix, hosts, deadline)
        time.sleep(SETTLE)  # past the hosts' start-up (their first polls and lists)
        spread.connections = _connections(prefix)
        idle_from, idle_started = _cpu(sims), time.monotonic()
        time.sleep(SETTLE)  # the relays' CPU while nothing happens
        busy_from, busy_started = _cpu(sims), time.monotonic()
        idle_rate = (busy_from - idle_from) / (busy_started - idle_started)
        stamps: dict[int, float] = {}
        target = "production"
        for _ in range(sizes.host_switches):
            started = time.time()
            result = switcher.use(target, user="bench")
            stamps[result.generation] = started
            target = "local" if target == "production" else "production"
            time.sleep(max(0.0, sizes.host_spacing - (time.time() - started)))
        time.sleep(STRAGGLERS)  # late is in the p99; missed means never seen
        busy = _cpu(sims) - busy_from - idle_rate * (time.monotonic() - busy_started)
        spread.idle_cpu = idle_rate / hosts
        spread.switch_cpu = max(0.0, busy) / (hosts * sizes.host_switches)
        for sim in sims:
            assert sim.stdin is not None and sim.stdout is not None
            sim.stdin.write("done\n")
            sim.stdin.flush()
            seen: dict[str, dict[str, float]] = json.loads(sim.stdout.readline())
            for host in seen.values():
                got = {int(generation): at for generation, at in host.items()}
                for generation, start in stamps.items():
                    # A host may go straight to a later generation: it saw this one then.
                    later = [at for g, at in got.items() if g >= generation]
                    if later:
                        spread.latencies.append(min(later) - start)
                    else:
                        spread.missed += 1
    finally:
        for sim in sims:
            if sim.poll() is None:
                sim.kill()
            sim.communicate()
        switcher.close()
        redis_forget(REDIS, prefix)
        log.close()
    return spread


def _cpu(sims: list[subprocess.Popen[str]]) -> float:
    """The simulated hosts' processes' CPU seconds so far, all together."""
    for sim in sims:
        assert sim.stdin is not None
        sim.stdin.write("cpu\n")
        sim.stdin.flush()
    total = 0.0
    for sim in sims:
        assert sim.stdout is not None
        total += float(sim.stdout.readline())
    return total


def _wait_subscribed(prefix: str, hosts: int, deadline: float) -> None:
    """Until every host's relay listens: switches start from a fleet that is up."""
    import redis

    client = redis.Redis.from_url(REDIS)
    try:
        while client.pubsub_numsub(f"{prefix}:switched")[0][1] < hosts:
            if time.monotonic() > deadline:
                raise RuntimeError("the simulated hosts did not all subscribe in time")
            time.sleep(0.1)
    finally:
        client.close()


def _connections(prefix: str) -> int:
    import redis

    client = redis.Redis.from_url(REDIS)
    try:
        return sum(
            1
            for c in client.client_list()
            if str(c.get("name", "")).startswith(f"dbswap:{prefix}:")
        )
    finally:
        client.close()


# -- a follower's CPU per switch ----------------------------------------------------


def _cpu_row(ws: Workspace, urls: dict[str, str]) -> Row:
    relayed = _cpu_per_switch(ws, urls, "relayed")
    direct = _cpu_per_switch(ws, urls, "direct")
    return Row(
        suite=SUITE,
        key="h.follower.cpu",
        label=KEYS[2][1],
        subject=relayed,
        baseline=direct,
        baseline_label="a process with its own subscription (no relay)",
        ratio=relayed / direct if direct > 0 else None,
        target="<= 0.1 ms",
        ok=relayed <= 0.0001,
        note=(
            f"{ws.sizes.cpu_switches} switches {ws.sizes.cpu_spacing * 1000:g} ms apart, "
            "CPU beyond an idle stretch as long"
        ),
    )


def _cpu_per_switch(ws: Workspace, urls: dict[str, str], mode: str) -> float:
    sizes = ws.sizes
    prefix = f"dbswap-bench-cpu-{uuid.uuid4().hex[:8]}"
    url = f"{REDIS}?prefix={prefix}"
    base = ws.disk / f"cpu-{mode}-{uuid.uuid4().hex[:6]}"
    processes: list[subprocess.Popen[str]] = []
    switcher = Switchboard(urls, runtime_dir=base / "switcher", store=RedisStateStore(url))
    try:
        if mode == "relayed":  # the host's relay: another process
            relay = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "bench._hosts_sim",
                    "--url",
                    url,
                    "--base",
                    str(base),
                    "--hosts",
                    "1",
                ],
                cwd=REPO,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            processes.append(relay)
            assert relay.stdout is not None and relay.stdout.readline().startswith("ready")
        follower = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench._cpu_follower",
                "--mode",
                mode,
                "--url",
                url,
                "--runtime",
                str(base / "h0"),
                "--targets",
                json.dumps(urls),
            ],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        processes.append(follower)
        assert follower.stdout is not None and follower.stdout.readline().strip() == "ready"

        def cpu() -> tuple[float, int]:
            assert follower.stdin is not None and follower.stdout is not None
            follower.stdin.write("cpu\n")
            follower.stdin.flush()
            seconds, generation = follower.stdout.readline().split()
            return float(seconds), int(generation)

        time.sleep(1.0)  # settled
        window = sizes.cpu_switches * sizes.cpu_spacing
        idle_start, _ = cpu()
        time.sleep(window)
        idle = cpu()[0] - idle_start
        busy_start, _ = cpu()
        target, last = "production", 0
        for _ in range(sizes.cpu_switches):
            started = time.monotonic()
            last = switcher.use(target, user="bench").generation
            target = "local" if target == "production" else "production"
            time.sleep(max(0.0, sizes.cpu_spacing - (time.monotonic() - started)))
        deadline = time.monotonic() + 5
        while True:
            seconds, generation = cpu()
            if generation >= last or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        busy = seconds - busy_start
        return max(0.0, busy - idle) / sizes.cpu_switches
    finally:
        for process in processes:
            if process.poll() is None:
                process.communicate("", timeout=30)
        switcher.close()
        redis_forget(REDIS, prefix)
