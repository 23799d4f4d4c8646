"""Target 4: the per-session cost does not grow with the number of targets or threads.

Targets: boards with 2, 10 and 50 SQLite targets; each row is dbswap against
a plain session on the same engine, and a finer one compares the bare
session creation (no query) of each board with the 2-target board's.
Threads: 1, 4 and 16 threads create sessions at once on one board (a pool
large enough for all); the figure is wall time per session, dbswap vs plain,
with and without a query.
All variants of a group run interleaved in the same rounds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from ._databases import seed, sqlite_file
from ._measure import Batch, interleave, paired
from ._report import Row
from ._workspace import Workspace
from .overhead import (
    TARGET,
    Factory,
    get_one,
    orm_get,
    per_class,
    plain_maker,
    switched_once,
)

SUITE = "scaling"


def run(ws: Workspace) -> list[Row]:
    return _targets(ws) + _threads(ws)


def _targets(ws: Workspace) -> list[Row]:
    get_variants: dict[str, Batch] = {}
    create_variants: dict[str, Batch] = {}
    for n in ws.sizes.targets:
        local = sqlite_file(ws.fast, f"scale{n}-local")
        seed(local)
        urls = {"local": local}
        urls.update({f"t{i:02d}": sqlite_file(ws.fast, f"scale{n}-t{i:02d}") for i in range(1, n)})
        board = ws.board(urls, f"scale-{n}")
        switched_once(board, "t01")
        get_variants[f"dbswap-{n}"] = orm_get(board.sessionmaker)
        get_variants[f"plain-{n}"] = orm_get(plain_maker(board.engine_for("local")))
        create_variants[f"create-{n}"] = per_class(board.sessionmaker, _create_close)
    sizes = ws.sizes
    times = interleave(get_variants, rounds=sizes.rounds, batch_seconds=sizes.batch_seconds)
    rows = [
        Row.of(
            SUITE,
            f"4.targets.{n}.get",
            f"ORM get with {n} targets configured",
            paired(times[f"dbswap-{n}"], times[f"plain-{n}"]),
            "plain sessionmaker, same engine",
            at_most=TARGET,
        )
        for n in sizes.targets
    ]
    creates = interleave(
        create_variants, rounds=sizes.micro_rounds, batch_seconds=sizes.micro_batch_seconds
    )
    first = sizes.targets[0]
    rows += [
        Row.of(
            SUITE,
            f"4.targets.{n}.create",
            f"session create+close, {n} targets vs {first}",
            paired(creates[f"create-{n}"], creates[f"create-{first}"]),
            f"same with {first} targets",
            at_most=TARGET,
            note="no query: the finest view of the per-session cost",
        )
        for n in sizes.targets[1:]
    ]
    return rows


def _create_close(factory: Factory) -> None:
    factory().close()


def threaded(
    make_factory: Callable[[], Factory], op: Callable[[Factory], object], threads: int
) -> Batch:
    """``op`` n times split over ``threads`` threads started together, all on one fresh
    sessionmaker (see ``per_class``); wall time for the n ops."""

    def run_threads(n: int) -> float:
        factory = make_factory()
        op(factory)
        share = max(1, n // threads)
        barrier = threading.Barrier(threads + 1)

        def work() -> None:
            barrier.wait()
            for _ in range(share):
                op(factory)

        workers = [threading.Thread(target=work) for _ in range(threads)]
        for worker in workers:
            worker.start()
        barrier.wait()
        started = time.perf_counter()
        for worker in workers:
            worker.join()
        return (time.perf_counter() - started) * n / (share * threads)

    return run_threads


def _threads(ws: Workspace) -> list[Row]:
    local = sqlite_file(ws.fast, "threads-local")
    seed(local)
    most = max(ws.sizes.threads)
    board = ws.board(
        {"local": local, "production": sqlite_file(ws.fast, "threads-prod")},
        "threads",
        engine_options={"pool_size": most + 2, "max_overflow": 0},
    )
    switched_once(board, "production")
    plain = plain_maker(board.engine_for("local"))
    sizes = ws.sizes
    rows = []
    for n in sizes.threads:  # one group per thread count: only like is compared with like
        # Long batches: with several threads, a batch ends with its slowest thread, whose
        # share of the GIL varies from batch to batch.
        times = interleave(
            {
                "dbswap": threaded(board.sessionmaker, get_one, n),
                "plain": threaded(plain, get_one, n),
                "twin": threaded(plain, get_one, n),
                "dbswap.create": threaded(board.sessionmaker, _create_close, n),
                "plain.create": threaded(plain, _create_close, n),
            },
            rounds=sizes.rounds,
            batch_seconds=sizes.batch_seconds * 2,
            same_size=False,  # sized per variant: a session without a query is 20x cheaper
        )
        floor = paired(times["twin"], times["plain"])
        at_once = f"{n} thread{'s' if n > 1 else ''} at once"
        rows.append(
            Row.of(
                SUITE,
                f"4.threads.{n}",
                f"ORM get, {at_once} (wall per session)",
                paired(times["dbswap"], times["plain"]),
                "plain sessionmaker, same threads",
                at_most=TARGET,
                note=f"A/A {floor.ratio:.3f} [{floor.low:.3f}-{floor.high:.3f}]",
            )
        )
        rows.append(
            Row.of(
                SUITE,
                f"4.threads.{n}.create",
                f"session create+close, {at_once}",
                paired(times["dbswap.create"], times["plain.create"]),
                "plain sessionmaker, same threads",
                at_most=TARGET,
                note="no query: the finest view of the per-session cost",
            )
        )
    return rows
