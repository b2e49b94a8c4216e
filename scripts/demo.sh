#!/usr/bin/env bash
# README command 1: the embedded default. SQLite, a real Celery worker on a broker that needs no
# server (the filesystem transport under var/), demo data, one URL printed.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh

export DEBUG="${DEBUG:-1}"
export STEPWISE_VAR_DIR="${STEPWISE_VAR_DIR:-$PWD/var}"
unset DATABASE_URL REDIS_URL CELERY_BROKER_URL CELERY_RESULT_BACKEND
PORT="${PORT:-8000}"
mkdir -p "$STEPWISE_VAR_DIR"

.venv/bin/python manage.py migrate --noinput -v0

.venv/bin/celery -A config worker --pool solo --loglevel INFO -Q default,imports,checks >"$STEPWISE_VAR_DIR/worker.log" 2>&1 &
WORKER=$!
cleanup() { kill "$WORKER" 2>/dev/null || true; wait "$WORKER" 2>/dev/null || true; }
trap cleanup EXIT INT TERM

.venv/bin/python manage.py demo_seed --wait
echo
echo "Worker log: $STEPWISE_VAR_DIR/worker.log"
echo "Stepwise is running at http://127.0.0.1:$PORT/  (Ctrl+C stops the server and the worker)"
.venv/bin/python manage.py runserver "127.0.0.1:$PORT" --noreload --skip-checks -v0
