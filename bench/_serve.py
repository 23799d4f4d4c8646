"""``python -m bench._serve --port N``: the demo app under uvicorn, for the HTTP benchmarks.

Configured only by the environment the harness gives it (``DATABASE_URL_<NAME>``,
``DBSWAP_RUNTIME_DIR``, ``DBSWAP_DEFAULT_TARGET``, ``DBSWAP_ADMIN_TOKEN``), like
an app deployed the old way, where a restart is how a new database takes effect.
Quiet logging, so that request logs do not weigh on the figures.
"""

from __future__ import annotations

import argparse
import os
import secrets


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)

    import uvicorn

    from dbswap import Switchboard
    from dbswap.demo import create_app

    board = Switchboard.from_env()
    app = create_app(
        board,
        admin_token=os.environ["DBSWAP_ADMIN_TOKEN"],
        admin_password=secrets.token_urlsafe(16),
    )
    uvicorn.run(
        app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False, ws="none"
    )


if __name__ == "__main__":
    main()
