"""The deployment files agree with the settings the code reads.

Neither the Dockerfile nor docker-compose.yml can run on these machines (no registry, no compose
v2), so this parses them and checks them against config/settings.py: every variable they set is
one settings reads, production-required settings reach web and worker, health checks, start
order, volumes, the Celery command and the image's entry points.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import subprocess
import sys
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from celery import Celery
from django.conf import settings
from django.test import Client
from django.urls import Resolver404, resolve

pytestmark = pytest.mark.smoke

ROOT = Path(__file__).resolve().parent.parent
SETTINGS_FILE = ROOT / "config" / "settings.py"
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERIGNORE = ROOT / ".dockerignore"

ENV_HELPERS = {"env_bool", "env_list", "env_str", "env_int"}
# Read by the interpreter or pip inside the image, not by Django: allowed in the Dockerfile's ENV.
INTERPRETER_ENV = re.compile(r"^(PATH|VIRTUAL_ENV|LANG|LC_ALL|PYTHON\w*|PIP_\w*)$")
RUNTIME_SERVICES = ("web", "worker")


# ---------------------------------------------------------------------------------------------
# Parsers
# ---------------------------------------------------------------------------------------------


def _is_name(node: ast.expr, name: str) -> bool:
    return isinstance(node, ast.Name) and node.id == name


def _is_os_environ(node: ast.expr) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "environ" and _is_name(node.value, "os")


def _literal(node: ast.expr | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


@cache
def settings_env_vars() -> frozenset[str]:
    """Names config/settings.py reads: os.environ.get/[]/os.getenv and its env_* helpers."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(SETTINGS_FILE.read_text(), filename=str(SETTINGS_FILE))):
        name = None
        if isinstance(node, ast.Call) and node.args:
            func = node.func
            environ_get = isinstance(func, ast.Attribute) and func.attr == "get" and _is_os_environ(func.value)
            os_getenv = isinstance(func, ast.Attribute) and func.attr == "getenv" and _is_name(func.value, "os")
            helper = isinstance(func, ast.Name) and func.id in ENV_HELPERS
            if environ_get or os_getenv or helper:
                name = _literal(node.args[0])
        elif isinstance(node, ast.Subscript) and _is_os_environ(node.value):
            name = _literal(node.slice)
        if name:
            names.add(name)
    return frozenset(names)


ENV_LINE = re.compile(r"^\s*(#\s*)?([A-Z_][A-Z0-9_]*)=(.*)$")


@cache
def env_example() -> tuple[dict[str, str], frozenset[str]]:
    """(active NAME=value lines, names only mentioned in commented-out `# NAME=value` lines)."""
    active: dict[str, str] = {}
    commented: set[str] = set()
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = ENV_LINE.match(line)
        if not match:
            continue
        hashed, name, value = match.groups()
        if hashed:
            commented.add(name)
            continue
        assert name not in active, f".env.example sets {name} twice"
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        active[name] = value
    return active, frozenset(commented - active.keys())


@cache
def compose() -> dict:
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict) and isinstance(data.get("services"), dict), "docker-compose.yml has no services"
    return data


def services() -> dict[str, dict]:
    return compose()["services"]


def app_services() -> dict[str, dict]:
    """Services that run the project's own image (built from this directory)."""
    return {name: svc for name, svc in services().items() if "build" in svc}


def raw_environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    result = {str(k): "" if v is None else str(v) for k, v in env.items()}
    env_files = service.get("env_file") or []
    if env_files:
        # A service reading .env gets whatever .env holds; .env.example stands in for it.
        active, _ = env_example()
        result = {**{k: f"${{{k}}}" for k in active}, **result}
    return result


INTERPOLATION = re.compile(r"\$\$|\$\{([A-Za-z_]\w*)(?:(:?[-?])([^}]*))?\}|\$([A-Za-z_]\w*)")


def interpolate(value: str, variables: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}, $$."""

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1) or match.group(4)
        operator, argument = match.group(2), match.group(3) or ""
        value = variables.get(name)
        missing = value is None or (operator in (":-", ":?") and value == "")
        if operator in ("-", ":-") and missing:
            return argument
        if operator in ("?", ":?") and missing:
            raise LookupError(f"compose would refuse to start: {name} missing ({argument})")
        return value or ""

    return INTERPOLATION.sub(substitute, value)


def referenced_variables(value: str) -> set[str]:
    return {m.group(1) or m.group(4) for m in INTERPOLATION.finditer(value) if m.group(0) != "$$"}


def effective_environment(service_name: str, variables: dict[str, str] | None = None) -> dict[str, str]:
    """The environment a project container sees: the image's ENV, then compose's, with .env applied."""
    if variables is None:
        variables = env_example()[0]
    env = dict(dockerfile_env())
    for name, raw in raw_environment(services()[service_name]).items():
        env[name] = interpolate(raw, variables)
    return env


@cache
def dockerfile_instructions() -> tuple[tuple[str, str], ...]:
    """(INSTRUCTION, arguments) pairs with continuation lines joined and comments dropped."""
    logical: list[str] = []
    buffer = ""
    for line in DOCKERFILE.read_text().splitlines():
        if not buffer and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if buffer and line.lstrip().startswith("#"):
            continue
        if line.rstrip().endswith("\\"):
            buffer += line.rstrip()[:-1] + " "
            continue
        logical.append(buffer + line)
        buffer = ""
    assert not buffer, "Dockerfile ends inside a continued line"
    result = []
    for line in logical:
        instruction, _, arguments = line.strip().partition(" ")
        result.append((instruction.upper(), arguments.strip()))
    return tuple(result)


def final_stage() -> list[tuple[str, str]]:
    instructions = list(dockerfile_instructions())
    starts = [i for i, (instr, _) in enumerate(instructions) if instr == "FROM"]
    assert starts, "Dockerfile has no FROM"
    return instructions[starts[-1] :]


@cache
def dockerfile_env() -> dict[str, str]:
    """ENV of the final stage (KEY=value forms; quotes removed)."""
    env: dict[str, str] = {}
    for instr, args in final_stage():
        if instr != "ENV":
            continue
        tokens = shlex.split(args)
        if tokens and "=" not in tokens[0]:  # legacy `ENV KEY value`
            env[tokens[0]] = " ".join(tokens[1:])
            continue
        for token in tokens:
            key, _, value = token.partition("=")
            env[key] = value
    return env


def exec_form(args: str) -> list[str]:
    args = args.strip()
    if args.startswith("["):
        parsed = json.loads(args)
        assert all(isinstance(a, str) for a in parsed), f"exec form must be a list of strings: {args}"
        return parsed
    return ["/bin/sh", "-c", args]


def command_words(command: str | list[str]) -> list[str]:
    return shlex.split(command) if isinstance(command, str) else [str(word) for word in command]


def healthcheck_words(test: str | list[str]) -> list[str]:
    if isinstance(test, str):
        return ["CMD-SHELL", test]
    return [str(word) for word in test]


def url_path_in(words: list[str]) -> str:
    urls = re.findall(r"https?://[^\s'\"]+", " ".join(words))
    assert len(urls) == 1, f"expected exactly one URL in the health check, found {urls}: {words}"
    return urlsplit(urls[0]).path or "/"


def celery_queues(words: list[str]) -> set[str]:
    for i, word in enumerate(words):
        if word in ("-Q", "--queues") and i + 1 < len(words):
            return set(words[i + 1].split(","))
        if word.startswith("--queues="):
            return set(word.split("=", 1)[1].split(","))
        if word.startswith("-Q") and len(word) > 2:
            return set(word[2:].lstrip("=").split(","))
    return set()


def celery_app_name(words: list[str]) -> str | None:
    for i, word in enumerate(words):
        if word in ("-A", "--app") and i + 1 < len(words):
            return words[i + 1]
        if word.startswith("--app="):
            return word.split("=", 1)[1]
    return None


def code_routed_queues() -> set[str]:
    """Queues tasks are sent to: the default queue, CELERY_TASK_ROUTES and any literal queue= in the code."""
    queues = {getattr(settings, "CELERY_TASK_DEFAULT_QUEUE", "celery")}
    routes = getattr(settings, "CELERY_TASK_ROUTES", None) or {}
    if isinstance(routes, dict):
        for route in routes.values():
            if isinstance(route, dict) and route.get("queue"):
                queues.add(route["queue"])
    skip = {".venv", "tests", "migrations", "bench", "node_modules", ".git"}
    for path in ROOT.rglob("*.py"):
        if skip & set(path.relative_to(ROOT).parts):
            continue
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Call):
                for keyword in node.keywords:
                    if keyword.arg == "queue" and _literal(keyword.value):
                        queues.add(_literal(keyword.value))
    return queues


def named_volume_mounts(service: dict) -> dict[str, str]:
    """target path -> named volume for `name:/path[:mode]` or long-form volume entries."""
    mounts: dict[str, str] = {}
    for entry in service.get("volumes") or []:
        if isinstance(entry, str):
            source, _, rest = entry.partition(":")
            target = rest.split(":")[0]
        else:
            if entry.get("type", "volume") != "volume":
                continue
            source, target = entry.get("source", ""), entry.get("target", "")
        if source and not source.startswith((".", "/", "~")):
            mounts[target.rstrip("/")] = source
    return mounts


def truthy(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


# ---------------------------------------------------------------------------------------------
# Environment: no dead config, and production's required settings reach web and worker
# ---------------------------------------------------------------------------------------------


def test_settings_parser_finds_the_variables_settings_reads() -> None:
    found = settings_env_vars()
    expected = {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "SECRET_KEY", "DEBUG", "ALLOWED_HOSTS", "MEDIA_ROOT"}
    assert expected <= found, (
        f"the ast scan of config/settings.py missed {sorted(expected - found)}; found {sorted(found)}"
    )


def test_project_services_set_only_variables_settings_reads() -> None:
    assert app_services(), "no service in docker-compose.yml builds the project image"
    for name, service in app_services().items():
        dead = set(raw_environment(service)) - settings_env_vars()
        assert not dead, (
            f"compose service {name!r} sets {sorted(dead)}, which config/settings.py never reads (dead config)"
        )


def test_dockerfile_env_is_read_by_settings_or_the_interpreter() -> None:
    dead = {k for k in dockerfile_env() if k not in settings_env_vars() and not INTERPRETER_ENV.match(k)}
    assert not dead, f"the Dockerfile sets ENV {sorted(dead)}, which config/settings.py never reads"


def test_env_example_lists_only_variables_something_reads() -> None:
    active, _ = env_example()
    compose_text = COMPOSE_FILE.read_text()
    consumed_by_compose_only = {
        var
        for svc_name, svc in services().items()
        if svc_name not in app_services()
        for value in raw_environment(svc).values()
        for var in referenced_variables(value)
    }
    for name in active:
        if name in settings_env_vars():
            continue
        assert name in consumed_by_compose_only, (
            f".env.example sets {name}, which config/settings.py never reads and no non-project "
            f"compose service interpolates (dead config)"
        )
        assert f"${{{name}" in compose_text


def test_env_example_documents_every_setting() -> None:
    active, commented = env_example()
    undocumented = settings_env_vars() - active.keys() - commented
    assert not undocumented, f"config/settings.py reads {sorted(undocumented)} but .env.example does not mention them"
    text = ENV_EXAMPLE.read_text().splitlines()
    for i, line in enumerate(text):
        if ENV_LINE.match(line) and not line.lstrip().startswith("#"):
            assert i > 0 and text[i - 1].lstrip().startswith("#"), (
                f".env.example: {line!r} has no comment line above it"
            )


def test_every_setting_in_env_example_reaches_web_and_worker() -> None:
    active, _ = env_example()
    for service_name in RUNTIME_SERVICES:
        env = raw_environment(services()[service_name])
        referenced = {var for value in env.values() for var in referenced_variables(value)}
        for name in active.keys() & settings_env_vars():
            assert name in referenced, (
                f".env.example sets {name} but compose service {service_name!r} never passes it on: "
                f"editing it in .env would silently do nothing"
            )


@pytest.mark.parametrize("service_name", [*RUNTIME_SERVICES, "migrate"])
def test_production_settings_are_provided(service_name: str) -> None:
    if service_name not in services():
        pytest.skip("no separate migrate service")
    env = effective_environment(service_name)
    for name in ("SECRET_KEY", "DATABASE_URL", "ALLOWED_HOSTS"):
        assert env.get(name), f"{service_name}: {name} is required in production and is not set"
    assert env.get("REDIS_URL") or env.get("CELERY_BROKER_URL"), (
        f"{service_name}: neither REDIS_URL nor CELERY_BROKER_URL is set"
    )
    assert "DEBUG" in env, f"{service_name}: DEBUG is not set explicitly"
    assert not truthy(env["DEBUG"]), f"{service_name}: DEBUG={env['DEBUG']!r} in the production stack"


@pytest.mark.parametrize("service_name", RUNTIME_SERVICES)
def test_missing_env_file_fails_loudly_instead_of_starting_insecurely(service_name: str) -> None:
    """With an empty .env, compose must refuse (${X:?}) rather than start with no secret or host list."""
    raw = raw_environment(services()[service_name])
    image_env = dockerfile_env()
    for name in ("SECRET_KEY", "DATABASE_URL", "ALLOWED_HOSTS"):
        try:
            value = interpolate(raw[name], {}) if name in raw else image_env.get(name, "")
        except LookupError:
            continue
        assert value, f"{service_name} would start with an empty {name} when .env lacks it; use ${{{name}:?message}}"
    debug = interpolate(raw["DEBUG"], {}) if "DEBUG" in raw else image_env.get("DEBUG", "")
    assert not truthy(debug), f"{service_name} defaults to DEBUG on"


@pytest.mark.parametrize("service_name", RUNTIME_SERVICES)
def test_settings_load_in_production_mode_with_the_stack_environment(service_name: str) -> None:
    """Import config/settings.py in a clean process with exactly the container's environment."""
    env = {**effective_environment(service_name), "PATH": os.environ["PATH"]}
    probe = (
        "import json, config.settings as s;"
        "print(json.dumps({'debug': s.DEBUG, 'db': s.DATABASES['default'], 'broker': s.CELERY_BROKER_URL,"
        "'media': str(s.MEDIA_ROOT), 'static_root': str(s.STATIC_ROOT),"
        "'static_backend': s.STORAGES['staticfiles']['BACKEND'], 'hosts': s.ALLOWED_HOSTS}, default=str))"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"settings fail to load with {service_name}'s environment:\n{done.stderr[-2000:]}"
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert loaded["debug"] is False
    assert loaded["db"]["ENGINE"] == "django.db.backends.postgresql", loaded["db"]["ENGINE"]
    assert loaded["db"]["HOST"] == "db", (
        f"DATABASE_URL should point at the compose `db` service, got {loaded['db']['HOST']!r}"
    )
    assert loaded["broker"].startswith("redis://redis"), (
        f"Celery broker should be the compose `redis` service, got {loaded['broker']!r}"
    )
    assert loaded["hosts"], "ALLOWED_HOSTS is empty"
    assert loaded["static_backend"].startswith("whitenoise."), loaded["static_backend"]
    build_time_static = Path(dockerfile_env().get("STEPWISE_VAR_DIR", "")) / "static"
    assert Path(loaded["static_root"]) == build_time_static, (
        f"STATIC_ROOT at runtime ({loaded['static_root']}) differs from where the image collected static files ({build_time_static})"
    )


def test_compose_database_credentials_match_database_url() -> None:
    active, _ = env_example()
    db = services()["db"]
    db_env = {k: interpolate(v, active) for k, v in raw_environment(db).items()}
    url = urlsplit(effective_environment("web")["DATABASE_URL"])
    assert url.hostname == "db"
    assert url.username == db_env.get("POSTGRES_USER", "postgres"), (
        "DATABASE_URL user differs from the db service's POSTGRES_USER"
    )
    assert url.password == db_env.get("POSTGRES_PASSWORD"), (
        ".env.example: DATABASE_URL password differs from POSTGRES_PASSWORD"
    )
    assert url.path.lstrip("/") == db_env.get("POSTGRES_DB", url.username), (
        "DATABASE_URL database differs from POSTGRES_DB"
    )


# ---------------------------------------------------------------------------------------------
# Services: health checks, start order, volumes, worker
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("service_name", ["db", "redis", "web", "worker"])
def test_service_has_a_healthcheck(service_name: str) -> None:
    service = services().get(service_name)
    assert service is not None, f"docker-compose.yml has no {service_name!r} service"
    check = service.get("healthcheck") or {}
    assert not check.get("disable"), f"{service_name}: health check disabled"
    words = healthcheck_words(check.get("test") or [])
    assert len(words) >= 2 and words[0] in ("CMD", "CMD-SHELL"), f"{service_name}: no health check test ({words})"
    text = " ".join(words)
    expected = {"db": "pg_isready", "redis": "redis-cli ping", "web": "/healthz", "worker": "inspect ping"}[
        service_name
    ]
    assert expected in text, f"{service_name}: health check should use {expected!r}, got {text!r}"


def test_backing_services_use_the_expected_images() -> None:
    assert re.fullmatch(r"postgres:15(\.\d+)*(-\w+)?", services()["db"].get("image", "")), services()["db"].get("image")
    assert re.fullmatch(r"redis:7(\.\d+)*(-\w+)?", services()["redis"].get("image", "")), services()["redis"].get(
        "image"
    )


@pytest.mark.parametrize("service_name", RUNTIME_SERVICES)
def test_service_waits_for_healthy_db_and_redis(service_name: str) -> None:
    depends = services()[service_name].get("depends_on")
    assert isinstance(depends, dict), f"{service_name}: depends_on must be a mapping with conditions, got {depends!r}"
    for backend in ("db", "redis"):
        condition = (depends.get(backend) or {}).get("condition")
        assert condition == "service_healthy", (
            f"{service_name} must wait for {backend} to be healthy (condition {condition!r})"
        )


def _runs_migrate(service: dict) -> bool:
    words = command_words(service.get("command") or []) + command_words(service.get("entrypoint") or [])
    return "manage.py" in " ".join(words) and "migrate" in words


def test_migrations_run_before_web_and_worker_start() -> None:
    migrators = {name for name, svc in app_services().items() if _runs_migrate(svc)}
    assert migrators, "no project service runs `manage.py migrate`"
    for service_name in RUNTIME_SERVICES:
        if service_name in migrators:
            continue
        depends = services()[service_name].get("depends_on") or {}
        waits_for = {
            n for n in migrators if (depends.get(n) or {}).get("condition") == "service_completed_successfully"
        }
        assert waits_for, (
            f"{service_name} must depend on {sorted(migrators)} with condition service_completed_successfully"
        )
    for name in migrators - set(RUNTIME_SERVICES):
        svc = services()[name]
        assert "migrate" in command_words(svc["command"]) and "--noinput" in command_words(svc["command"])
        assert svc.get("restart") in ("no", None, False), f"one-shot {name} must not restart"
        condition = ((svc.get("depends_on") or {}).get("db") or {}).get("condition")
        assert condition == "service_healthy", f"{name} must wait for a healthy db"


def test_postgres_data_is_on_a_named_volume() -> None:
    mounts = named_volume_mounts(services()["db"])
    volume = mounts.get("/var/lib/postgresql/data")
    assert volume, f"db must mount a named volume at /var/lib/postgresql/data, mounts: {mounts}"
    assert volume in (compose().get("volumes") or {}), f"volume {volume!r} is not declared under top-level volumes"


def test_media_volume_is_shared_by_web_and_worker_at_media_root() -> None:
    volumes = set()
    for service_name in RUNTIME_SERVICES:
        media_root = effective_environment(service_name).get("MEDIA_ROOT", "")
        assert media_root.startswith("/"), (
            f"{service_name}: MEDIA_ROOT must be an absolute path in the container, got {media_root!r}"
        )
        mounts = named_volume_mounts(services()[service_name])
        volume = mounts.get(media_root.rstrip("/"))
        assert volume, f"{service_name}: no named volume mounted at MEDIA_ROOT={media_root} (mounts: {mounts})"
        assert volume in (compose().get("volumes") or {}), f"volume {volume!r} is not declared under top-level volumes"
        volumes.add(volume)
    assert len(volumes) == 1, (
        f"web and worker must share one media volume (uploads are read by the worker), got {volumes}"
    )


def test_web_serves_port_8000() -> None:
    ports = [str(p) for p in services()["web"].get("ports") or []]
    assert any(p.split(":")[-1].split("/")[0] == "8000" for p in ports), (
        f"web must publish container port 8000, got {ports}"
    )


def test_worker_runs_the_config_app_on_every_routed_queue() -> None:
    words = command_words(services()["worker"].get("command") or [])
    assert words[:1] == ["celery"] and "worker" in words, f"worker command is not a Celery worker: {words}"
    assert celery_app_name(words) == "config", f"worker must name the Celery app `config` (-A config): {words}"
    import config

    assert isinstance(getattr(config, "celery_app", None), Celery), "config/__init__.py must expose the Celery app"
    consumed = set()
    for name, svc in app_services().items():
        svc_words = command_words(svc.get("command") or [])
        if svc_words[:1] == ["celery"] and "worker" in svc_words:
            consumed |= celery_queues(svc_words) or {getattr(settings, "CELERY_TASK_DEFAULT_QUEUE", "celery")}
            assert celery_app_name(svc_words) == "config", f"{name}: Celery app must be `config`"
    routed = code_routed_queues()
    assert routed <= consumed, f"tasks are routed to {sorted(routed - consumed)} but no compose worker consumes them"


def test_worker_healthcheck_pings_its_own_node() -> None:
    words = healthcheck_words(services()["worker"]["healthcheck"]["test"])
    assert words[0] == "CMD-SHELL", "the worker's node name needs the shell to expand $HOSTNAME"
    assert celery_app_name(shlex.split(words[1])) == "config", words
    # What the shell receives after compose's own interpolation (compose needs `$$` to leave `$` alone).
    shell_command = interpolate(words[1], {})
    assert "-d celery@$HOSTNAME" in shell_command or "--destination celery@$HOSTNAME" in shell_command, (
        f"the worker health check should ping only its own node (celery@$HOSTNAME), the shell gets: {shell_command!r}"
    )


# ---------------------------------------------------------------------------------------------
# Dockerfile
# ---------------------------------------------------------------------------------------------


def test_dockerfile_base_images_are_python_312_or_newer() -> None:
    stage_names = set()
    froms = [args for instr, args in dockerfile_instructions() if instr == "FROM"]
    assert froms
    for args in froms:
        words = [w for w in args.split() if not w.startswith("--")]
        image = words[0]
        if len(words) >= 3 and words[1].upper() == "AS":
            stage_names.add(words[2])
        if image in stage_names:
            continue
        match = re.fullmatch(r"python:(\d+)\.(\d+)(?:\.\d+)?(-[\w.-]+)?", image)
        assert match, f"base image {image!r} is not an official python:X.Y image"
        assert (int(match[1]), int(match[2])) >= (3, 12), f"base image {image!r}: Django 6 needs Python 3.12 or newer"


def test_dockerfile_installs_the_lock_file() -> None:
    instructions = dockerfile_instructions()
    assert any(i == "COPY" and "requirements.lock" in a for i, a in instructions), (
        "requirements.lock is not copied into the build"
    )
    assert any(i == "RUN" and re.search(r"pip install .*-r \S*requirements\.lock", a) for i, a in instructions), (
        "no `pip install -r requirements.lock` step"
    )


def test_dockerfile_collects_static_files_with_debug_off() -> None:
    runs = [a for i, a in final_stage() if i == "RUN" and "collectstatic" in a]
    assert runs, "the final stage does not run collectstatic"
    run = runs[0]
    env = dockerfile_env()
    assert "SECRET_KEY=" in run or "SECRET_KEY" in env, "collectstatic needs a build-time dummy SECRET_KEY"
    assert "SECRET_KEY" not in env, "do not bake a SECRET_KEY into the image's ENV"
    assert "--noinput" in run
    debug = re.search(r"\bDEBUG=(\S+)", run)
    assert debug is None or not truthy(debug[1]), (
        "collectstatic must run with DEBUG off to write the whitenoise manifest"
    )


def test_dockerfile_runs_as_a_non_root_user() -> None:
    users = [a for i, a in final_stage() if i == "USER"]
    assert users, "the final stage never switches away from root (no USER)"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), f"final USER is {users[-1]!r}"


def test_dockerfile_cmd_runs_gunicorn_on_port_8000() -> None:
    cmds = [a for i, a in final_stage() if i == "CMD"]
    assert cmds, "no CMD"
    words = exec_form(cmds[-1])
    assert words[0] == "gunicorn", f"CMD must start gunicorn, got {words}"
    assert "config.wsgi:application" in words or "config.wsgi" in words, f"CMD must serve config.wsgi: {words}"
    text = " ".join(words)
    assert re.search(r"(--bind|-b)[ =]\S*:8000\b", text), f"gunicorn must bind port 8000: {text}"
    assert re.search(r"--timeout[ =]\d+", text), "set an explicit gunicorn --timeout"
    exposed = [a for i, a in final_stage() if i == "EXPOSE"]
    assert any("8000" in a.split() or "8000/tcp" in a.split() for a in exposed), "EXPOSE 8000 missing"


def dockerfile_healthcheck_words() -> list[str]:
    checks = [a for i, a in final_stage() if i == "HEALTHCHECK"]
    assert checks, "no HEALTHCHECK in the final stage"
    args = checks[-1]
    assert args.strip().upper() != "NONE"
    _, _, command = args.partition("CMD ")
    assert command, f"HEALTHCHECK without CMD: {args}"
    return exec_form(command)


def test_dockerignore_keeps_secrets_and_local_state_out() -> None:
    patterns = {
        line.strip().rstrip("/")
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for pattern in (".env", ".venv", "var", ".git"):
        assert pattern in patterns, f".dockerignore must exclude {pattern}"


# ---------------------------------------------------------------------------------------------
# Health check URLs exist in the URLconf and answer without login
# ---------------------------------------------------------------------------------------------


def health_paths() -> dict[str, str]:
    return {
        "Dockerfile HEALTHCHECK": url_path_in(dockerfile_healthcheck_words()),
        "compose web healthcheck": url_path_in(healthcheck_words(services()["web"]["healthcheck"]["test"])),
    }


def test_health_check_paths_resolve_in_the_urlconf() -> None:
    for where, path in health_paths().items():
        try:
            match = resolve(path)
        except Resolver404:
            pytest.fail(f"{where} probes {path}, which config.urls does not resolve")
        assert match.url_name == "healthz", (
            f"{where} probes {path}, which resolves to {match.view_name}, not the health view"
        )


@pytest.mark.django_db
def test_health_check_path_answers_ok_without_login() -> None:
    for where, path in health_paths().items():
        response = Client().get(path)
        assert response.status_code == 200, f"{where}: GET {path} -> {response.status_code}"
        assert response.json() == {"status": "ok"}, f"{where}: GET {path} -> {response.content[:200]!r}"
