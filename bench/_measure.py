"""Interleaved timing: every figure is a ratio against a baseline of the same rounds.

This machine is shared and noisy: its speed drifts by tens of percent within
seconds. So variants never run in separate phases. Each round runs every
variant once, in a shuffled order (so no variant always follows the same
one: a batch can warm or cool the machine for the next), ratios are taken
within a round (paired), and the figure is the median of those ratios over
rounds. Its ~95 % interval comes from order statistics, so no distribution
is assumed.
"""

from __future__ import annotations

import gc
import math
import random
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

Batch = Callable[[int], float]
"""Run an operation ``n`` times and return the elapsed seconds (the batch times itself)."""


def timed_loop(op: Callable[[], object]) -> Batch:
    """A Batch calling ``op()`` n times; the loop's own cost is the same for every variant."""

    def batch(n: int) -> float:
        started = time.perf_counter()
        for _ in range(n):
            op()
        return time.perf_counter() - started

    return batch


def calibrate(batch: Batch, seconds: float, max_ops: int) -> int:
    """How many operations make one batch last about ``seconds``."""
    n = 1
    while True:
        elapsed = batch(n)
        if elapsed >= seconds / 8 or n >= max_ops:
            break
        n *= 4
    per_op = max(elapsed / n, 1e-9)
    return max(1, min(max_ops, round(seconds / per_op)))


def interleave(
    variants: Mapping[str, Batch],
    *,
    rounds: int,
    batch_seconds: float,
    warmup: int = 1,
    max_ops: int = 1_000_000,
    same_size: bool = True,
) -> dict[str, list[float]]:
    """Seconds per operation of each variant, one value per round, rounds interleaved.

    With ``same_size`` every variant runs the same number of operations per
    batch (sized for the slowest), so fixed per-batch effects weigh the same
    on both sides of a ratio. Calibration runs twice: the first pass is a
    warm-up (first-use compilation, connections, caches).
    """
    names = list(variants)
    for name in names:
        calibrate(variants[name], batch_seconds, max_ops)
    sizes = {name: calibrate(variants[name], batch_seconds, max_ops) for name in names}
    if same_size:
        smallest = min(sizes.values())
        sizes = dict.fromkeys(names, smallest)
    per_op: dict[str, list[float]] = {name: [] for name in names}
    # Frozen objects are never scanned again: full collections stay short and rare,
    # and no variant pays for the garbage of the setup.
    gc.collect()
    gc.freeze()
    try:
        order = list(names)
        shuffle = random.Random(len(names) * 7919 + rounds).shuffle  # the same orders every run
        for r in range(warmup + rounds):
            shuffle(order)
            for name in order:
                n = sizes[name]
                elapsed = variants[name](n)
                if r >= warmup:
                    per_op[name].append(elapsed / n)
    finally:
        gc.unfreeze()
    return per_op


@dataclass(frozen=True)
class Ratio:
    """``subject`` against ``baseline``: medians (s/op) and the median paired ratio."""

    subject: float
    baseline: float
    ratio: float
    low: float
    high: float
    rounds: int
    best: float  # min(subject) / min(baseline): a second estimator, blind to slow rounds


def paired(subject: Sequence[float], baseline: Sequence[float]) -> Ratio:
    """Median of per-round ratios subject/baseline, with its ~95 % interval."""
    if len(subject) != len(baseline) or not subject:
        raise ValueError("paired() needs two series of the same, non-zero length")
    ratios = [s / b for s, b in zip(subject, baseline, strict=True)]
    mid, low, high = median_interval(ratios)
    return Ratio(
        statistics.median(subject),
        statistics.median(baseline),
        mid,
        low,
        high,
        len(ratios),
        min(subject) / min(baseline),
    )


def median_interval(values: Sequence[float]) -> tuple[float, float, float]:
    """The median and a distribution-free ~95 % interval for it (ranks n/2 -+ 0.98 sqrt n)."""
    ordered = sorted(values)
    n = len(ordered)
    mid = statistics.median(ordered)
    k = max(0, math.floor(n / 2 - 0.98 * math.sqrt(n)) - 1)
    return mid, ordered[k], ordered[n - 1 - k]


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), linearly interpolated like numpy's default."""
    if not values:
        raise ValueError("percentile() of nothing")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    lower = math.floor(position)
    upper = min(lower + 1, len(ordered) - 1)
    weight = position - lower
    return ordered[lower] * (1 - weight) + ordered[upper] * weight
