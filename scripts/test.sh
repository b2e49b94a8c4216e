#!/usr/bin/env bash
# README command 2: the whole suite — lint, types, layering, migrations, then pytest on
# PostgreSQL (and Redis, a real Celery worker) plus a smoke pass on SQLite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh

export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/stepwise}"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379/15}"
export SECRET_KEY="${SECRET_KEY:-test-only-secret-key}"
export DJANGO_SETTINGS_MODULE=config.settings_test

reachable() {  # host port
  .venv/bin/python - "$1" "$2" <<'PY'
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2).close()
except OSError:
    sys.exit(1)
PY
}
hostport() {  # URL -> "host port"
  .venv/bin/python - "$1" "$2" <<'PY'
import sys
from urllib.parse import urlsplit
u = urlsplit(sys.argv[1])
print(u.hostname or "127.0.0.1", u.port or int(sys.argv[2]))
PY
}
read -r PG_HOST PG_PORT < <(hostport "$DATABASE_URL" 5432)
read -r REDIS_HOST REDIS_PORT < <(hostport "$REDIS_URL" 6379)
if ! reachable "$PG_HOST" "$PG_PORT" || ! reachable "$REDIS_HOST" "$REDIS_PORT"; then
  if docker compose version >/dev/null 2>&1; then
    echo "Starting PostgreSQL and Redis with docker compose"
    docker compose up -d --wait db redis
  fi
  if ! reachable "$PG_HOST" "$PG_PORT" || ! reachable "$REDIS_HOST" "$REDIS_PORT"; then
    echo "The tests need PostgreSQL at $PG_HOST:$PG_PORT and Redis at $REDIS_HOST:$REDIS_PORT (set DATABASE_URL / REDIS_URL, or install docker compose so 'docker compose up -d db redis' can start them)." >&2
    exit 2
  fi
fi

echo "== ruff";        .venv/bin/ruff check .
echo "== ruff format"; .venv/bin/ruff format --check .
echo "== layers";      .venv/bin/lint-imports
SCRATCH=$(mktemp -d)
trap 'rm -rf "$SCRATCH"' EXIT
echo "== migrations";  DATABASE_URL="sqlite:///$SCRATCH/check.sqlite3" .venv/bin/python manage.py makemigrations --check --dry-run -v1
echo "== mypy";        .venv/bin/mypy config core trajectories verification annotation audit exports demo

run_pytest() {
  set +e
  .venv/bin/pytest "$@"
  local status=$?
  set -e
  if [ "$status" -eq 5 ]; then echo "pytest collected no tests: that is a failure here." >&2; return 1; fi
  return "$status"
}
echo "== pytest on PostgreSQL"
run_pytest -q
echo "== pytest smoke pass on SQLite (the embedded default)"
DATABASE_URL="sqlite:///$SCRATCH/smoke.sqlite3" run_pytest -q -m smoke
