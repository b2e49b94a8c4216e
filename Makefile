.PHONY: demo test lint fmt worker migrate bench sandbox-image clean

demo:            ## README command 1: SQLite, a local worker, demo data, one URL
	scripts/demo.sh

test:            ## README command 2: the whole suite
	scripts/test.sh

lint:
	scripts/bootstrap.sh && .venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/lint-imports && .venv/bin/mypy config core trajectories verification annotation audit exports demo

fmt:
	.venv/bin/ruff format . && .venv/bin/ruff check --fix .

worker:          ## a Celery worker against the configured broker
	.venv/bin/celery -A config worker --loglevel INFO -Q default,imports,checks

migrate:
	.venv/bin/python manage.py migrate

bench:           ## import, verification, workspace, audit and export benchmarks on PostgreSQL (print figures)
	.venv/bin/python bench/import_bench.py
	.venv/bin/python bench/verify_bench.py
	.venv/bin/python bench/workspace_bench.py
	.venv/bin/python bench/audit_bench.py
	.venv/bin/python bench/export_bench.py

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
