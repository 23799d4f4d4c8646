#!/usr/bin/env bash
# What a user gets from `pip install dbswap[EXTRA]`: build the wheel and sdist, install the
# wheel into a fresh venv per extra (bare first), then import, `dbswap --version`,
# `dbswap status` on two SQLite targets, and a one-test pytest session that uses the plugin.
# Usage: scripts/wheel-smoke.sh [EXTRA ...]   (default: bare and every single extra)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
extras=("$@")
[ ${#extras[@]} -gt 0 ] || extras=(bare postgres mysql fastapi flask django redis alembic metrics otel)

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
pip_install() {  # quiet, but the whole output if it fails
  "$1/bin/pip" install --quiet "${@:2}" >"$work/pip.log" 2>&1 || { cat "$work/pip.log"; return 1; }
}
"$PYTHON" -m venv "$work/builder"
pip_install "$work/builder" build
"$work/builder/bin/python" -m build --outdir "$work/dist" "$ROOT" >/dev/null
wheel="$(ls "$work"/dist/dbswap-*.whl)"
ls "$work"/dist/dbswap-*.tar.gz >/dev/null  # the sdist was built too

# The modules each extra promises, imported by the smoke test.
declare -A imports=(
  [bare]="dbswap.cli dbswap.testing"
  [postgres]="psycopg asyncpg greenlet"
  [mysql]="pymysql aiomysql greenlet"
  [fastapi]="dbswap.fastapi dbswap.demo.cli aiosqlite greenlet"
  [flask]="dbswap.flask"
  [django]="dbswap.django dj_database_url"
  [redis]="redis dbswap._redis_state"
  [alembic]="alembic dbswap._schema"
  [metrics]="prometheus_client dbswap.metrics"
  [otel]="opentelemetry.trace"
)

for extra in "${extras[@]}"; do
  echo "== wheel smoke: ${extra}"
  venv="$work/venv-$extra"
  "$PYTHON" -m venv "$venv"
  spec="$wheel"; [ "$extra" = bare ] || spec="$wheel[$extra]"
  pip_install "$venv" "$spec" pytest
  app="$work/app-$extra"
  mkdir -p "$app"
  cat > "$app/test_smoke.py" <<'PY'
def test_the_plugin_gives_an_isolated_board(dbswap_board):
    assert dbswap_board.active == "local"
    assert dbswap_board.use("production").target == "production"
PY
  (
    cd "$app"
    export DATABASE_URL_LOCAL="sqlite:///local.db" DATABASE_URL_PRODUCTION="sqlite:///production.db"
    "$venv/bin/python" -c "
import importlib, sys
import dbswap
assert dbswap.Switchboard and dbswap.PinnedSession, 'public names'
for name in sys.argv[1:]:
    importlib.import_module(name)
" ${imports[$extra]}
    "$venv/bin/dbswap" --version
    "$venv/bin/dbswap" status >/dev/null
    "$venv/bin/python" -m pytest -q -p no:cacheprovider test_smoke.py
  )
done
echo "== wheel smoke: ok (${extras[*]})"
