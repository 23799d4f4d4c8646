"""``dbswap demo``: run the demo app on this machine.

This module imports only click and the core, so the main CLI can register
the command without importing FastAPI; the app is imported when it runs.
"""

from __future__ import annotations

import contextlib
import ipaddress
import secrets
import socket
from pathlib import Path
from typing import Any

import click

from .._errors import ConfigError
from .._targets import read_environment


class DemoError(click.ClickException):
    """One line on stderr, no traceback (same style and exit codes as the main CLI)."""

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


class DemoMisconfigured(DemoError):
    exit_code = 2


@click.command("demo")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", default=8000, show_default=True, type=click.IntRange(1, 65535), help="TCP port."
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the demo's SQLite databases for local and production live when "
    "DATABASE_URL_LOCAL / DATABASE_URL_PRODUCTION do not set them [default: .runtime/demo].",
)
@click.option(
    "--trusted-proxy",
    "trusted_proxies",
    multiple=True,
    metavar="ADDRESS",
    help="The address of a reverse proxy in front of the demo whose X-Forwarded-For "
    "header names the client (repeatable). Without it the header is ignored: failed "
    "logins are limited per TCP peer.",
)
def demo_command(
    host: str, port: int, data_dir: Path | None, trusted_proxies: tuple[str, ...]
) -> None:
    """Run the demo: a DJ's site whose database you switch live at /admin/configuration.

    It creates two SQLite databases, local and production, with different
    rows, for whichever of the two the environment does not set. Every
    DATABASE_URL_<NAME> is a target too (e.g. DATABASE_URL_STAGING beside the
    two defaults), where it creates and fills its own dbswap_demo_* tables if
    missing.
    The admin password is DBSWAP_ADMIN_PASSWORD, or one printed at start;
    scripts may send 'Authorization: Bearer <DBSWAP_ADMIN_TOKEN>' when it is set.
    """
    try:
        import uvicorn

        from ._app import ADMIN_URL, create_app, demo_board
    except ImportError as exc:
        raise DemoError(
            f"the demo needs the fastapi extra: pip install 'dbswap[fastapi]' ({exc})"
        ) from None
    env = read_environment()
    password = env.get("DBSWAP_ADMIN_PASSWORD", "").strip()
    generated = not password
    password = password or secrets.token_urlsafe(12)
    token = env.get("DBSWAP_ADMIN_TOKEN", "").strip() or None
    _check_port(host, port)
    try:
        board = demo_board(data_dir)
        app = create_app(board, admin_password=password, admin_token=token)
    except ConfigError as exc:
        raise DemoMisconfigured(str(exc)) from None

    shown_host = f"[{host}]" if ":" in host else host
    site = f"http://{shown_host}:{port}"
    click.echo("dbswap demo: a DJ's site whose database you switch without a restart")
    click.echo(f"  site:      {site}/")
    click.echo(f"  admin:     {site}{ADMIN_URL}")
    metrics = f", {site}/metrics" if board._observer.metrics is not None else ""
    click.echo(f"  probes:    {site}/healthz/database{metrics}")
    if generated:
        click.echo(
            f"  password:  {password}   (generated; set DBSWAP_ADMIN_PASSWORD to choose one)"
        )
    else:
        click.echo("  password:  the value of DBSWAP_ADMIN_PASSWORD")
    if token:
        click.echo("  API:       Authorization: Bearer <DBSWAP_ADMIN_TOKEN>")
    width = max(10, *(len(name) + 1 for name in board.targets))
    for name, target in board.targets.items():
        click.echo(f"  {name + ':':<{width}} {board.mask(target.masked_url)}")
    # The demo's runtime dir is its own: a shell elsewhere needs to be told where it is.
    click.echo(
        f"  switch it from another shell:  dbswap --runtime-dir {board.runtime_dir} use production"
    )
    for name, reason in app.state.unprepared.items():
        click.echo(f"  warning: target {name!r} could not be prepared ({reason})", err=True)
    if not _is_loopback(host):
        click.echo("  warning: listening beyond this machine; keep the demo on 127.0.0.1", err=True)
    click.echo("  Ctrl+C to stop.")
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        ws="none",
        lifespan="on",
        log_level="info",
        server_header=False,
        # uvicorn believes X-Forwarded-For from 127.0.0.1 by default: anybody on this machine
        # could then be a new client per request and never reach the login limit.
        proxy_headers=bool(trusted_proxies),
        forwarded_allow_ips=list(trusted_proxies) or None,
    )
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises Ctrl+C after shutting down
        uvicorn.Server(config).run()


def _check_port(host: str, port: int) -> None:
    """Say clearly that the port is taken, rather than a uvicorn traceback."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise DemoError(f"cannot listen on {host!r}: not an address of this machine") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            raise DemoError(
                f"cannot listen on {host}:{port} ({exc.strerror}); pick another with --port"
            ) from None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
