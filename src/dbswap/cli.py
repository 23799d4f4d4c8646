"""The ``dbswap`` command: status, targets, use, check, history, run, demo.

Exit codes: 0 ok, 1 refused or failed (switch, health), 2 usage or configuration
error; ``run`` exits with its command's code. Every error is one line on
stderr, masked, without a traceback. A command imports what it uses when it
runs (no ORM, no asyncio, no framework for ``status``).
"""

from __future__ import annotations

import getpass
import json
import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from . import __version__
from ._errors import ConfigError, DBSwapError
from ._followers import Acknowledgement, Follower
from ._followers import describe as followers_described
from ._health import Health
from ._masking import mask_text
from ._switchboard import PRODUCTION, Switchboard
from ._targets import MAX_SECONDS, check_seconds
from ._timebox import describe, format_duration, limit_fields, parse_duration
from .demo.cli import demo_command  # click and the core only; FastAPI is imported when it runs

if TYPE_CHECKING:
    from ._audit import AuditLog

F = TypeVar("F", bound=Callable[..., Any])

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
DEFAULT_WAIT = 2.0  # seconds `use` waits for the followers by default (a warning if some lag)
NOT_FOLLOWED = 3  # exit code of `use --wait` when some processes did not follow in time


class Failed(click.ClickException):
    """A refused switch or a sick target: exit code 1."""

    exit_code = 1

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


class CommandNotRun(Failed):
    """``dbswap run`` could not start its command: exit code 127, as a shell says."""

    exit_code = 127


class Misconfigured(click.UsageError):
    """Configuration error: exit code 2, one line, no usage text."""

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


class Seconds(click.ParamType):  # type: ignore[type-arg]  # generic only in click >= 8.2
    """A timeout in seconds: more than 0 and at most MAX_SECONDS (no inf, no nan)."""

    name = "seconds"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        what = f"--{param.name}" if param is not None and param.name else "the timeout"
        try:
            return check_seconds(value, what)
        except ConfigError as exc:
            raise Misconfigured(str(exc)) from None  # one line, exit code 2


class Duration(click.ParamType):  # type: ignore[type-arg]  # generic only in click >= 8.2
    """A time limit: 90s, 15m, 2h, 1h30m or plain seconds, from 1s to 7d."""

    name = "duration"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, float):
            return value
        try:
            return parse_duration(str(value), "--for")
        except ConfigError as exc:
            raise Misconfigured(str(exc)) from None  # one line, exit code 2


def _timeout_option(help: str) -> Callable[[F], F]:
    return click.option(
        "--timeout",
        type=Seconds(),
        default=3.0,
        show_default=True,
        help=f"{help} (at most {MAX_SECONDS:g}).",
    )


@contextmanager
def _progress(message: str, after: float = 0.4) -> Iterator[None]:
    """On a terminal, say what is taking a while (a health check), once it has."""
    if not sys.stderr.isatty():
        yield
        return
    import threading

    timer = threading.Timer(after, lambda: click.echo(message, err=True))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


@contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except ConfigError as exc:
        raise Misconfigured(str(exc)) from None
    except DBSwapError as exc:
        raise Failed(str(exc)) from None


BoardSource = Switchboard | Callable[[], Switchboard]
"""A board, or a function that returns one (called when a command runs)."""

_BOARD_META = "dbswap.board"  # ctx.meta is shared by a context and all its children


def _board(ctx: click.Context) -> Switchboard:
    source: BoardSource | None = ctx.meta.get(_BOARD_META)
    if source is not None:
        if isinstance(source, Switchboard):
            return source
        with _errors():
            return source()
    board = ctx.obj.get("board") if isinstance(ctx.obj, dict) else None
    if board is None:
        with _errors():
            board = _board_as_the_app_has_it(ctx.ensure_object(dict))
        ctx.obj["board"] = board
        ctx.call_on_close(board.close)  # its connections close with the command, not at exit
    return board


def _environment(options: dict[str, Any]) -> tuple[dict[str, str], Path]:
    """The environment (``--env-file``, ``--runtime-dir``) and the directory it is read from."""
    env_file: Path | None = options.get("env_file")
    env = dict(os.environ)
    base = Path.cwd()
    if env_file is not None:
        from dotenv import dotenv_values

        base = env_file.parent
        env = {k: v for k, v in dotenv_values(env_file).items() if v is not None} | env
    if options.get("runtime_dir") is not None:
        env["DBSWAP_RUNTIME_DIR"] = str(Path(options["runtime_dir"]).absolute())
    return env, base


def _trail_without_targets(options: dict[str, Any]) -> AuditLog:
    """The audit trail of the runtime dir (and Redis) the environment names: history needs
    no target to be configured in this shell."""
    from ._audit import AuditLog

    env, base = _environment(options)
    runtime = base / (env.get("DBSWAP_RUNTIME_DIR", "").strip() or ".runtime")
    state = env.get("DBSWAP_STATE", "").strip()
    if state.startswith(("redis://", "rediss://", "unix://")):
        from ._redis_state import RedisStateStore

        return AuditLog(runtime, shared=RedisStateStore(state, cache_dir=runtime))
    return AuditLog(runtime)


def _board_as_the_app_has_it(options: dict[str, Any]) -> Switchboard:
    """``Switchboard.from_env()``, with the targets the running app published where this
    shell resolves them differently (a Flask instance folder, the demo's files)."""
    from ._published import reconcile, refusal

    env, base = _environment(options)
    runtime = base / (env.get("DBSWAP_RUNTIME_DIR", "").strip() or ".runtime")
    try:
        board: Switchboard | None = Switchboard.from_env(env, base)
    except ConfigError as exc:
        if "no database targets" not in str(exc):
            raise
        board, missing = None, exc
    taken, problems = reconcile(board.targets if board is not None else {}, runtime)
    if problems:
        if board is not None:
            board.close()
        raise refusal(runtime, problems)
    if taken:
        if board is not None:
            board.close()
        urls = {f"DATABASE_URL_{name.upper()}": url for name, url in taken.items()}
        return Switchboard.from_env(env | urls, base)
    if board is None:
        searched = " or ".join(str(base / name) for name in (".env", ".env.local"))
        raise ConfigError(
            f"{missing}; nothing in the environment, {searched}, and no running app "
            f"published its targets in {runtime}. Run this in the app's directory, pass "
            "--env-file PATH or --runtime-dir DIR"
        )
    return board


def _emit(data: Any, as_json: bool, text: Callable[[], str]) -> None:
    click.echo(json.dumps(data, indent=2) if as_json else text())


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dbswap")
@click.option(
    "--env-file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Read the app's variables from this file (default: .env and .env.local here).",
)
@click.option(
    "--runtime-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="The app's runtime dir (default: DBSWAP_RUNTIME_DIR, else .runtime here).",
)
@click.pass_context
def cli(ctx: click.Context, env_file: Path | None, runtime_dir: Path | None) -> None:
    """Switch a running app between databases without a restart.

    Targets come from DATABASE_URL_<NAME> variables (.env, .env.local and the
    environment); the active one is kept in DBSWAP_RUNTIME_DIR (default
    .runtime), which every process of the app reads.

    \b
    Examples:
      dbswap status
      dbswap targets --check
      dbswap use production --user alice
      dbswap use production --for 15m      (back to the previous target after 15 min)
      dbswap use local
      dbswap history -n 5
      dbswap run production -- alembic upgrade head
      dbswap --runtime-dir ../app/.runtime status

    A running app publishes how it resolved its targets in its runtime dir; where
    this shell resolves one differently (a Flask instance folder, the demo's
    files), the app's is used, or the command refuses and says what to set.
    """
    ctx.ensure_object(dict).update(env_file=env_file, runtime_dir=runtime_dir)


cli.add_command(demo_command)


@cli.command()
@json_option
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Show the active target, its generation, when and by whom it was set, its time limit.

    Exits 1 when this process cannot confirm the shared state (unreadable state
    file, unreachable Redis): what it shows is then not confirmed; and when a
    time limit has ended but the return to its target failed (it says why).
    """
    board = _board(ctx)
    state, lock, problem = board.state, board.lock_reason, board.state_problem
    served = PRODUCTION if lock is not None else state.target  # a locked app ignores the state
    target = board.target(served)
    limit = board.time_limit if lock is None else None  # asking may make the return (_timebox)
    followers = board.followers()
    data = {
        "target": served,
        "generation": state.generation,
        "switched_at": state.switched_at,
        "switched_by": state.switched_by,
        "url": target.masked_url,
        "dialect": target.dialect,
        "read_only": bool(state.read_only),
        "locked": lock is not None,
        "lock_reason": lock,
        "state_target": state.target,
        "confirmed": problem is None,
        "problem": problem,
        "runtime_dir": str(board.runtime_dir),
        "state_store": board._store.describe(),
        **limit_fields(limit),
        "followers": None if followers is None else [f.to_dict() for f in followers],
    }

    def text() -> str:
        lines = [
            f"active:      {served}" + (f"  (locked: {lock})" if lock else ""),
            f"mode:        {'READ-ONLY' if state.read_only else 'read-write'}",
            f"url:         {target.masked_url}",
            f"generation:  {state.generation}",
            f"switched at: {state.switched_at or '-'}",
            f"switched by: {state.switched_by or '-'}",
            f"time limit:  {describe(limit) if limit else 'none'}",
            f"followers:   {_followers_text(followers, state.generation)}",
        ]
        if served != state.target:
            lines.append(f"state says:  {state.target} (ignored while the lock holds)")
        return "\n".join(lines)

    _emit(data, as_json, text)
    if problem is not None:
        click.echo(f"warning: the shared state is not confirmed: {board.mask(problem)}", err=True)
        ctx.exit(1)
    if limit is not None and limit.problem is not None:
        click.echo(f"warning: the time limit ended: {describe(limit)}", err=True)
        ctx.exit(1)


@cli.command()
@click.option("--check", "with_check", is_flag=True, help="Also test each target's connection.")
@_timeout_option("Seconds per health check")
@json_option
@click.pass_context
def targets(ctx: click.Context, with_check: bool, timeout: float, as_json: bool) -> None:
    """List the configured targets (masked URLs), optionally with their health."""
    board = _board(ctx)
    active = board.active
    with _errors():
        health = {h.target: h for h in board.check(timeout=timeout)} if with_check else {}
    rows = []
    for name, target in board.targets.items():
        row: dict[str, Any] = {
            "name": name,
            "active": name == active,
            "dialect": target.dialect,
            "url": target.masked_url,
        }
        if name in health:
            row.update(_health_fields(health[name]))
        rows.append(row)

    def text() -> str:
        lines = []
        for row in rows:
            mark = "*" if row["active"] else " "
            line = f"{mark} {row['name']:<14} {row['dialect']:<11} {row['url']}"
            if "ok" in row:
                line += "  " + _health_text(health[row["name"]])
            lines.append(line)
        return "\n".join(lines)

    _emit(rows, as_json, text)
    if with_check and not all(_healthy(h) for h in health.values()):
        ctx.exit(1)


@cli.command()
@click.argument("name")
@click.option("--user", "-u", help="Who is switching (default: cli:<login name>).")
@click.option("--yes", "-y", is_flag=True, help="Do not ask before switching to production.")
@_timeout_option("Seconds for the health check")
@click.option(
    "--read-only/--writable",
    "read_only",
    default=None,
    help="Make the database refuse writes, or allow them (default: DBSWAP_READONLY).",
)
@click.option("--ignore-schema", is_flag=True, help="Switch even if the Alembic revision differs.")
@click.option(
    "--for",
    "for_",
    type=Duration(),
    help="End the switch on its own after this long (90s, 15m, 2h; at most 7d); "
    "again on the active target: a new end.",
)
@click.option(
    "--then",
    metavar="NAME",
    help="Where a switch with --for returns (default: the target active before).",
)
@click.option("--no-limit", is_flag=True, help="End the active target's time limit (no --for).")
@click.option(
    "--wait",
    type=Seconds(),
    default=None,
    help="Wait up to this long until every process following the state serves the new "
    f"generation; exit {NOT_FOLLOWED} if some do not (default: report after up to "
    f"{DEFAULT_WAIT:g} s, a warning only).",
)
@json_option
@click.pass_context
def use(
    ctx: click.Context,
    name: str,
    user: str | None,
    yes: bool,
    timeout: float,
    read_only: bool | None,
    ignore_schema: bool,
    for_: float | None,
    then: str | None,
    no_limit: bool,
    wait: float | None,
    as_json: bool,
) -> None:
    """Switch the app to target NAME (health-checked first; nothing changes on failure).

    With --for, the switch ends on its own: every process returns to --then
    (or to the target active before) once it has passed.
    """
    if no_limit and (for_ is not None or then is not None):
        raise Misconfigured("--no-limit cannot go with --for or --then")
    board = _board(ctx)
    name = name.strip().lower()
    user = user or _default_user()
    question = None if yes else _production_question(board, name, then, for_)
    if question is not None:
        _confirm(question, lambda: board.record_refusal(name, user, NOT_CONFIRMED))
    with _errors(), _progress(f"checking {name!r} (up to {timeout:g} s)..."):
        result = board.use(
            name,
            user=user,
            timeout=timeout,
            read_only=read_only,
            ignore_schema=ignore_schema,
            for_=for_,
            then=then,
            wait=DEFAULT_WAIT if wait is None else wait,
        )
    ack = result.acknowledgement
    data = asdict(result) | {"duration_ms": round(result.duration * 1000, 3)}
    del data["duration"], data["acknowledgement"]
    if ack is not None:
        data["acknowledged"] = ack.acknowledged if ack.followers is not None else None
        data["followers"] = (
            None
            if ack.followers is None
            else [
                f.to_dict() | {"acknowledged": f.generation >= ack.generation}
                for f in ack.followers
            ]
        )

    def text() -> str:
        mode = "read-only" if result.read_only else "read-write"
        if not result.changed:
            return (
                f"already on {result.target} ({mode}, generation {result.generation}); "
                "nothing to do"
            )
        text = (
            f"switched {result.previous} -> {result.target} ({mode}, "
            f"generation {result.generation}, {data['duration_ms']:.1f} ms)"
        )
        if result.expires_at is not None:
            text += f"\nends on its own at {result.expires_at}, then back to {result.return_to}"
        elif no_limit:
            text += "\nno time limit"
        if ack is not None and ack.followers:
            text += "\n" + followers_described(ack)
        return text

    _emit(data, as_json, text)
    if ack is None:
        return
    if ack.followers == () and not as_json:  # committed, nobody serves it: not a bare success
        click.echo(
            f"warning: no running process follows {board._store.describe()}: the switch is "
            "recorded, but no app serves from it. Is the app using another runtime dir "
            "(DBSWAP_RUNTIME_DIR) or state (DBSWAP_STATE)? `dbswap status` in the app's "
            "directory shows its own.",
            err=True,
        )
    elif not ack.complete:
        if not as_json:  # (JSON says it: acknowledged, and each follower's)
            click.echo(f"warning: {followers_described(ack)}", err=True)
        if wait is not None:
            ctx.exit(NOT_FOLLOWED)


@cli.command()
@_timeout_option("Seconds per health check")
@json_option
@click.pass_context
def check(ctx: click.Context, timeout: float, as_json: bool) -> None:
    """Test every target's connection (and schema revision, with an Alembic config).

    Exits 1 if any target is unreachable or its schema differs from the code's.
    """
    board = _board(ctx)
    with _errors():
        results = board.check(timeout=timeout)
    rows = [{"name": h.target, "dialect": h.dialect} | _health_fields(h) for h in results]
    _emit(rows, as_json, lambda: "\n".join(f"{h.target:<14} {_health_text(h)}" for h in results))
    if not all(_healthy(h) for h in results):
        ctx.exit(1)


@cli.command()
@click.option("-n", "--limit", default=20, show_default=True, type=click.IntRange(min=1))
@json_option
@click.pass_context
def history(ctx: click.Context, limit: int, as_json: bool) -> None:
    """Show the last switch attempts, newest first (and dbswap run's commands)."""
    try:
        with _errors():
            entries = _board(ctx).history(limit)
    except Misconfigured as exc:
        if "no database targets" not in exc.message:
            raise
        with _errors():
            entries = _trail_without_targets(ctx.ensure_object(dict)).history(limit)

    def text() -> str:
        if not entries:
            return "no switch recorded yet"
        rows = [_history_row(e) for e in entries]
        widths = [max(len(row[column]) for row in rows) for column in range(5)]
        lines = []
        for row in rows:
            cells = (cell.ljust(width) for cell, width in zip(row[:5], widths, strict=True))
            lines.append("  ".join(cells).rstrip() + (f"  {row[5]}" if row[5] else ""))
        return "\n".join(lines)

    _emit(entries, as_json, text)


@cli.command(context_settings={"ignore_unknown_options": True})
@click.argument("name")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.option("--user", "-u", help="Who is running it (default: cli:<login name>).")
@click.option("--yes", "-y", is_flag=True, help="Do not ask before running against production.")
@click.pass_context
def run(
    ctx: click.Context, name: str, command: tuple[str, ...], user: str | None, yes: bool
) -> None:
    """Run COMMAND with every dbswap board in it pinned to target NAME.

    Nobody else moves: the shared state, the running app and `dbswap status`
    are untouched. For migrations, init scripts and data fixes against one
    database. Exits with COMMAND's exit code; the audit log records the run
    (user, target, command name, exit code). Put `--` before COMMAND.

    \b
    Examples:
      dbswap run production -- alembic upgrade head
      dbswap run staging -- flask init-db
      dbswap run production --yes -- python manage.py migrate
    """
    import subprocess
    import time

    from ._pinning import pinned_environment

    board = _board(ctx)
    with _errors():
        target = board.target(name).name
        if board.production_lock and target != PRODUCTION:
            raise ConfigError(
                f"DBSWAP_ENV=production locks this environment to 'production'; cannot run "
                f"against {target!r}"
            )
    user = user or _default_user()
    program = os.path.basename(command[0])
    if target == PRODUCTION and not yes:
        _confirm(
            f"Run {command[0]!r} against PRODUCTION ({_where(board, target)})?",
            lambda: board.record_refusal(target, user, NOT_CONFIRMED, command=program),
        )
    started = time.perf_counter()
    board.record_run(target, program, user)  # before it starts: a killed wrapper leaves a line
    try:
        child = subprocess.Popen(
            command, env=pinned_environment(target), preexec_fn=_ends_with_its_parent()
        )
    except OSError as exc:
        board.record_run(target, program, user, exit_code=127)
        raise CommandNotRun(f"cannot run {command[0]!r}: {exc.strerror}") from None
    for stop in (signal.SIGTERM, signal.SIGHUP):  # asked to stop: the child stops first
        signal.signal(stop, lambda number, frame: child.send_signal(number))
    while True:
        try:
            code = child.wait()
            break
        except KeyboardInterrupt:  # the child got the same Ctrl+C: let it finish first
            continue
    code = code if code >= 0 else 128 - code  # killed by a signal: as a shell reports it
    board.record_run(target, program, user, exit_code=code, duration=time.perf_counter() - started)
    ctx.exit(code)


def _ends_with_its_parent() -> Callable[[], None] | None:
    """For ``Popen(preexec_fn=...)``: the child gets SIGTERM when ``dbswap run`` dies, even
    by SIGKILL (Linux's parent-death signal), so no pinned command outlives its audit."""
    if not sys.platform.startswith("linux"):
        return None  # elsewhere a killed wrapper leaves its child running
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved here: the child only calls it
    parent = os.getpid()

    def end_with_parent() -> None:
        prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the wrapper died before that: so does its child
            os._exit(128 + signal.SIGTERM)

    return end_with_parent


def _history_row(e: dict[str, Any]) -> tuple[str, str, str, str, str, str]:
    """One audit entry as aligned columns: time, outcome, route, generation, user, details."""
    gen = e.get("generation")
    details = []
    if e.get("outcome") in ("run-started", "run"):
        code = e.get("exit_code")
        ended = "running, or its wrapper was killed" if code is None else f"exit {code}"
        details.append(f"$ {e.get('command') or '?'} ({ended})")
    if e.get("reason"):
        details.append(f"({e['reason']})")
    if e.get("timebox") == "cancelled":
        details.append("[time limit cancelled]")
    elif e.get("timebox"):
        capped = f"; {e['capped']}" if e.get("capped") else ""
        details.append(
            f"[{e['timebox']}: until {e.get('expires_at')}, then {e.get('return_to')}{capped}]"
        )
    return (
        str(e.get("time", "?")),
        str(e.get("outcome", "?")),
        f"{e.get('from') or '-'} -> {e.get('to') or '-'}",
        f"gen {'-' if gen is None else gen}",
        f"by {e.get('user') or '-'}",
        "  ".join(details),
    )


def board_commands(board: BoardSource, *, name: str = "dbswap") -> click.Group:
    """status, targets, use, check and history as a new group working on ``board``.

    What ``flask dbswap ...`` and ``manage.py dbswap ...`` run: the same
    commands, options, output and exit codes as the ``dbswap`` command, on the
    app's own board instead of one built from the environment. ``board`` may
    be a function, called only when a command runs (after the app is loaded).
    """

    @click.pass_context
    def bind(ctx: click.Context) -> None:
        ctx.meta[_BOARD_META] = board

    return click.Group(
        name,
        commands=[status, targets, use, check, history, run],
        callback=bind,
        help="Switch this app between databases without a restart (dbswap).",
        context_settings={"help_option_names": ["-h", "--help"]},
    )


NOT_CONFIRMED = "not confirmed (asked before production)"


def _followers_text(followers: list[Follower] | None, generation: int) -> str:
    """``3 processes on 1 host, all on generation 5`` (or who lags), for ``status``."""
    if followers is None:
        return "unknown (the state store cannot tell right now)"
    if not followers:
        return "none (no running process follows this state)"
    return followers_described(Acknowledgement(generation, tuple(followers), 0.0), timed=False)


def _production_question(
    board: Switchboard, name: str, then: str | None, for_: float | None
) -> str | None:
    """What to ask before a switch that leads to production (now, or when a limit ends)."""
    limit = board._timebox.max_production
    capped = f", at most {format_duration(limit)} (DBSWAP_MAX_PRODUCTION)" if limit else ""
    if name == PRODUCTION and name != board.active:
        lasting = f" for {format_duration(for_)}" if for_ is not None else capped
        return f"Switch the app to PRODUCTION ({_where(board, PRODUCTION)}){lasting}?"
    if then is not None and then.strip().lower() == PRODUCTION and for_ is not None:
        return (
            f"Switch the app to {name} for {format_duration(for_)}, then to PRODUCTION "
            f"({_where(board, PRODUCTION)}){capped}?"
        )
    return None


def _where(board: Switchboard, name: str) -> str:
    """Where a target's database is, for people: host and database (never a password)."""
    target = board.targets.get(name)
    if target is None:
        return "not configured"
    url = target.sa_url
    if target.is_sqlite:
        return f"SQLite file {url.database}"
    host = f"{url.host}:{url.port}" if url.port else str(url.host)
    return f"{host}/{url.database}" if url.database else host


def _confirm(question: str, refused: Callable[[], None]) -> None:
    """Ask; a refusal (or no answer) is audited (``refused``) and changes nothing."""
    try:
        confirmed = click.confirm(question, default=False)
    except click.Abort:  # no answer (no terminal, end of input)
        confirmed = False
    if not confirmed:
        refused()
        raise Failed("not confirmed, nothing changed; pass --yes to go ahead without asking")


def _health_fields(h: Health) -> dict[str, Any]:
    fields: dict[str, Any] = {"ok": h.ok, "latency_ms": h.latency_ms, "error": h.error}
    if h.expected_revisions is not None:
        fields |= {
            "revisions": list(h.revisions or ()),
            "expected_revisions": list(h.expected_revisions),
            "schema_ok": h.schema_ok,
        }
    return fields


def _health_text(h: Health) -> str:
    if not h.ok:
        return f"UNREACHABLE: {h.error}"
    text = f"ok ({h.latency_ms:.1f} ms)"
    if h.expected_revisions is not None:
        found = ",".join(h.revisions or ()) or "none"
        expected = ",".join(h.expected_revisions)
        text += f", schema {found}" + (" (current)" if h.schema_ok else f" != code {expected}")
    return text


def _healthy(h: Health) -> bool:
    return h.ok and h.schema_ok is not False


def _default_user() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # no login name (containers): still say where it came from
        return "cli"


def main() -> None:
    """Entry point: never a traceback for a user, never a secret."""
    for stream in (sys.stdout, sys.stderr):  # a terminal that cannot show a character
        reconfigure = getattr(stream, "reconfigure", None)  # gets an escape, not an error
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")
    try:
        cli(standalone_mode=True)
    except SystemExit:
        raise
    except Exception as exc:  # a bug or an unexpected environment problem
        click.echo(f"error: {mask_text(f'{type(exc).__name__}: {exc}')}", err=True)
        sys.exit(1)
