"""`manage.py import_trajectories PROJECT FILE...`: import agent-run files from the shell.

Runs the same import as an upload in the browser, in this process, with a progress bar on
stderr. Exit codes: 0 all records imported (or already present), 1 some records were rejected
(unless --allow-rejected), 2 a file could not be imported at all.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.models import Project
from core.services import audit_record
from trajectories.formats import IMPORTERS
from trajectories.models import ImportJob, ImportStatus
from trajectories.services.imports import import_job_run, source_file_store

SHOWN_ERRORS = 20


class Command(BaseCommand):
    help = "Import agent-run files into a project (formats: " + ", ".join(sorted(IMPORTERS)) + ")."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("project", help="The project's slug.")
        parser.add_argument("files", nargs="+", type=Path, help="JSONL or JSON files, gzip allowed.")
        parser.add_argument("--format", default="", choices=["", *sorted(IMPORTERS)], help="Skip detection.")
        parser.add_argument("--as", dest="username", default="", help="Record the import as this user.")
        parser.add_argument("--model", default="", help="Model name for runs whose file names none.")
        parser.add_argument("--scaffold", default="", help="Scaffold for runs whose file names none.")
        parser.add_argument(
            "--allow-rejected", action="store_true", help="Exit 0 even when some records were rejected."
        )
        parser.add_argument("--no-progress", action="store_true", help="No progress bar.")

    def handle(self, *args: Any, **options: Any) -> None:
        project = Project.objects.filter(slug=options["project"]).first()
        if project is None:
            raise CommandError(f"no project with slug {options['project']!r}")
        actor = None
        if options["username"]:
            actor = User.objects.filter(username=options["username"]).first()
            if actor is None:
                raise CommandError(f"no user named {options['username']!r}")
        worst = 0
        for path in options["files"]:
            if not path.is_file():
                self.stderr.write(f"{path}: no such file")
                worst = 2
                continue
            job = self._import(project, path, actor, options)
            worst = max(worst, self._report(path, job, allow_rejected=options["allow_rejected"]))
        if worst:
            sys.exit(worst)

    def _import(self, project: Project, path: Path, actor: User | None, options: dict[str, Any]) -> ImportJob:
        try:
            with path.open("rb") as stream:
                source = source_file_store(actor=actor, project=project, name=path.name, stream=stream)
        except ValidationError as exc:
            raise CommandError(f"{path}: {' '.join(exc.messages)}") from exc
        job = ImportJob.objects.create(
            project=project,
            source_file=source,
            format_requested=options["format"],
            default_model=options["model"],
            default_scaffold=options["scaffold"],
            bytes_total=source.size,
            created_by=actor,
        )
        audit_record(
            actor=actor, verb="import.create", target=job, project=project, after={"file": path.name, "via": "cli"}
        )
        show = not options["no_progress"] and self.stderr.isatty()
        return import_job_run(job_id=job.pk, on_progress=self._progress(path.name) if show else None)

    def _progress(self, name: str) -> Callable[[ImportJob], None]:
        def show(job: ImportJob) -> None:
            filled = job.percent // 5
            bar = "#" * filled + "." * (20 - filled)
            self.stderr.write(f"\r{name} [{bar}] {job.percent:3d}% {job.records_seen} records", ending="")
            self.stderr.flush()

        return show

    def _report(self, path: Path, job: ImportJob, *, allow_rejected: bool) -> int:
        if self.stderr.isatty():
            self.stderr.write("")
        if job.status == ImportStatus.FAILED:
            self.stderr.write(f"{path}: not imported: {job.error}")
            return 2
        self.stdout.write(
            f"{path}: {job.format_detected}: {job.trajectories_imported} trajectories ({job.steps_imported} steps) imported,"
            f" {job.duplicates} already present, {job.rejected} rejected, {job.unknown_tool_calls} calls to unknown tools"
        )
        for error in job.errors[:SHOWN_ERRORS]:
            pointer = f" at {error['pointer']}" if error.get("pointer") else ""
            self.stderr.write(f"  {path}: {error['where']}{pointer}: {error['message']}")
        if job.rejected > SHOWN_ERRORS:
            self.stderr.write(f"  … and {job.rejected - SHOWN_ERRORS} more rejected records")
        return 1 if job.rejected and not allow_rejected else 0
