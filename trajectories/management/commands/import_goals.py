"""`manage.py import_goals PROJECT FILE --format csv|jsonl|tau-bench|swe-bench`: seed goals or SWE tasks.

Runs the same services as the import page. Valid rows are imported, rejected rows are listed with
where and why. Exit codes: 0 every row imported (or already present), 1 some rows were rejected,
2 the file could not be read at all.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.models import Project
from trajectories.services import goals as goal_services
from trajectories.services import swe_tasks as swe_services

SHOWN_ERRORS = 50


def _messages(exc: ValidationError) -> str:
    if hasattr(exc, "error_dict"):
        return "; ".join(f"{key}: {message}" for key, messages in exc.message_dict.items() for message in messages)
    return "; ".join(exc.messages)


class Command(BaseCommand):
    help = "Import goals (CSV, JSONL), τ-bench tasks or SWE-bench instances into a project."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("project", help="The project's slug.")
        parser.add_argument("file", type=Path)
        parser.add_argument("--format", required=True, choices=sorted(goal_services.FORMATS))
        parser.add_argument("--as", dest="username", default="", help="Record the import as this user.")
        parser.add_argument("--env", default="", help="τ-bench: the environment (airline, retail, …).")
        parser.add_argument("--band", default="", help="τ-bench: a band for every goal.")
        parser.add_argument("--tags", default="", help="τ-bench: tags for every goal, separated by commas.")

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
            self.stderr.write(f"{path}: no such file")
            sys.exit(2)
        fmt = options["format"]
        try:
            with path.open("rb") as stream:
                common: dict[str, Any] = {"actor": actor, "project": project, "stream": stream, "name": path.name}
                if fmt == "tau-bench":
                    tags = [t for t in options["tags"].split(",") if t.strip()]
                    report = goal_services.tau_bench_tasks_import(
                        **common, env=options["env"], band=options["band"], tags=tags
                    )
                elif fmt == "swe-bench":
                    report = swe_services.swe_tasks_import(**common)
                elif fmt == "csv":
                    report = goal_services.goals_import_csv(**common)
                else:
                    report = goal_services.goals_import_jsonl(**common)
        except ValidationError as exc:
            self.stderr.write(f"{path}: not imported: {_messages(exc)}")
            sys.exit(2)
        self.stdout.write(f"{path}: {report.summary()}")
        for error in report.errors[:SHOWN_ERRORS]:
            self.stderr.write(f"  {path}: {error}")
        if report.rejected > SHOWN_ERRORS:
            self.stderr.write(f"  … and {report.rejected - SHOWN_ERRORS} more rejected rows")
        if report.rejected:
            sys.exit(1)
