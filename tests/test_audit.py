"""The audit file: history() reads the newest lines from the end, whatever the file's size."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dbswap._audit import AuditLog, _last_lines


@settings(max_examples=200, deadline=None)
@given(
    lines=st.lists(st.text(alphabet="ab{}é\"' ", max_size=30), max_size=40),
    trailing_newline=st.booleans(),
    limit=st.one_of(st.none(), st.integers(min_value=0, max_value=45)),
    block=st.integers(min_value=1, max_value=64),
)
def test_last_lines_agree_with_reading_the_whole_file(
    tmp_path_factory: pytest.TempPathFactory,
    lines: list[str],
    trailing_newline: bool,
    limit: int | None,
    block: int,
) -> None:
    """Small blocks put line boundaries everywhere a real 64 KiB block could."""
    path = tmp_path_factory.mktemp("audit") / "log"
    text = "\n".join(lines) + ("\n" if trailing_newline and lines else "")
    path.write_bytes(text.encode("utf-8"))
    everything = text.splitlines()[::-1]
    expected = everything if limit is None else everything[:limit]
    assert _last_lines(path, limit, block=block) == expected


def test_history_of_a_large_log_is_its_newest_entries(tmp_path: Path) -> None:
    log = AuditLog(tmp_path)
    for i in range(3000):  # about 600 KB: several blocks
        log.record(
            outcome="ok",
            user=f"u{i}",
            source="local",
            target="x",
            generation=i,
            duration_ms=1.0,
            reason="padding " * 20,
        )
    with log.path.open("a") as f:
        f.write("not json\n")
    newest = log.history(3)
    assert [e["user"] for e in newest] == ["u2999", "u2998"]  # the bad line counts, skipped
    assert [e["generation"] for e in log.history(5)] == [2999, 2998, 2997, 2996]
    assert len(log.history(None)) == 3000
    assert json.loads(log.path.read_text().splitlines()[0])["user"] == "u0"
