"""The PNG: per-operation latency over time around a switch, one panel per timeline.

matplotlib is optional (the ``bench`` extra); without it the plot is skipped
with a note, and the table is unaffected.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ._workspace import Timeline

COLORS = {"local": "tab:blue", "production": "tab:red"}


def plot(timelines: Sequence[Timeline], path: Path) -> str | None:
    """Write the PNG; returns why not, or None when it was written."""
    if not timelines:
        return "no timeline was recorded (run the timeline or http suite)"
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display: files only
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed: pip install matplotlib (the bench extra)"
    fig, axes = plt.subplots(len(timelines), 1, figsize=(10, 3.4 * len(timelines)), squeeze=False)
    for ax, tl in zip(axes[:, 0], timelines, strict=True):
        for target in sorted(set(tl.targets)):
            xs = [s * 1000 for s, t in zip(tl.starts, tl.targets, strict=True) if t == target]
            ys = [
                lat * 1000 for lat, t in zip(tl.latencies, tl.targets, strict=True) if t == target
            ]
            color = COLORS.get(target, "tab:gray")
            ax.scatter(xs, ys, s=4, color=color, label=f"served by {target}", alpha=0.7)
        ax.axvline(tl.requested * 1000, color="black", linestyle="--", label="use() requested")
        ax.axvline(tl.returned * 1000, color="tab:green", linestyle=":", label="use() returned")
        ax.set_yscale("log")
        ax.set_xlabel("time relative to the switch request (ms)")
        ax.set_ylabel("latency (ms, log)")
        ax.set_title(f"{tl.title}: {tl.source} -> {tl.destination}", fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(loc="upper left", fontsize=8, markerscale=3)
    fig.suptitle("dbswap: request latency around a live switch (no restart)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None
