"""`manage.py import_registry PROJECT FILE [--format F] [--name N] [--freeze] [--as USER]`.

Builds a new draft registry version from a tool-spec file (the same service as an upload in the
browser), and freezes it with --freeze. Exit codes: 0 done, 2 the file could not become a
registry (each fault is printed with file, tool and JSON pointer).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from core.models import Project
from trajectories.formats.tools import TOOL_FORMATS
from trajectories.services.registries import RegistryImportError, registry_freeze, registry_import


class Command(BaseCommand):
    help = "Import a tool registry from a spec file (formats: " + ", ".join(sorted(TOOL_FORMATS)) + ")."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("project", help="The project's slug.")
        parser.add_argument("file", type=Path, help="OpenAI tools, OpenAPI 3.0/3.1, MCP tools/list or τ-bench specs.")
        parser.add_argument("--format", default="", choices=["", *sorted(TOOL_FORMATS)], help="Skip detection.")
        parser.add_argument("--name", default="", help="The registry's name (default: the file name).")
        parser.add_argument("--freeze", action="store_true", help="Freeze the new version straight away.")
        parser.add_argument("--as", dest="username", default="", help="Record the import as this user.")

    def handle(self, *args: Any, **options: Any) -> None:
        project = Project.objects.filter(slug=options["project"]).first()
        if project is None:
            raise CommandError(f"no project with slug {options['project']!r}")
        actor = None
        if options["username"]:
            actor = User.objects.filter(username=options["username"]).first()
            if actor is None:
                raise CommandError(f"no user named {options['username']!r}")
        path: Path = options["file"]
        if not path.is_file():
            raise CommandError(f"{path}: no such file")
        try:
            with transaction.atomic(), path.open("rb") as stream:
                registry = registry_import(
                    actor=actor,
                    project=project,
                    name=path.name,
                    stream=stream,
                    format_name=options["format"],
                    registry_name=options["name"],
                )
                if options["freeze"]:
                    registry = registry_freeze(actor=actor, registry=registry)
        except RegistryImportError as exc:
            self.stderr.write(
                f"{path}: not imported ({len(exc.located)} problem{'s' if len(exc.located) != 1 else ''}):"
            )
            for error in exc.located:
                self.stderr.write(f"  {error}")
            sys.exit(2)
        state = f"frozen, sha256 {registry.sha256}" if registry.is_frozen else "draft"
        self.stdout.write(
            f"{path}: {registry.source_format}: registry v{registry.version} with"
            f" {registry.tools.count()} tools ({state})"
        )
