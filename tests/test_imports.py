"""What importing dbswap costs: the CLI, the plugin and sync sessions need no asyncio driver.

Each check runs in a fresh interpreter, so nothing imported by other tests counts.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

HEAVY = ("sqlalchemy.orm", "sqlalchemy.ext.asyncio", "greenlet", "fastapi", "flask", "django")


def run_python(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("module", ["dbswap", "dbswap.cli", "dbswap.testing"])
def test_loading_the_cli_or_the_plugin_imports_no_orm_nor_framework(
    module: str, tmp_path: Path
) -> None:
    done = run_python(
        f"""
        import sys, {module}
        print(sorted(m for m in {HEAVY!r} + ("alembic",) if m in sys.modules))
        """,
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_without_greenlet_dbswap_imports_switches_and_serves_sync_sessions(
    tmp_path: Path,
) -> None:
    """SQLAlchemy 2.1 no longer installs greenlet: a bare install must still work."""
    done = run_python(
        f"""
        import sys
        sys.modules["greenlet"] = None  # as in a venv without it: importing it fails
        import sqlalchemy as sa
        import dbswap, dbswap.testing
        board = dbswap.Switchboard(
            {{"local": "sqlite:///{tmp_path}/l.db", "production": "sqlite:///{tmp_path}/p.db"}},
            runtime_dir="{tmp_path}/rt",
        )
        for name in ("l", "p"):
            sa.create_engine(f"sqlite:///{tmp_path}/{{name}}.db").connect().close()
        board.use("production")
        with board.sessionmaker()() as s:
            print(s.dbswap_target, s.execute(sa.text("SELECT 1")).scalar())
        board.close()
        """,
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["production", "1"]
