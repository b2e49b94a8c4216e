"""`manage.py export_batch PROJECT BATCH_ID --format F`: export a batch here, with a progress bar on stderr."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.models import Project
from exports.formats import FORMATS
from exports.models import Batch, ExportJob
from exports.services.jobs import export_dir, export_job_create, export_job_run


class Command(BaseCommand):
    help = "Export a batch in a format; the files and manifest are written under MEDIA_ROOT/exports/<job>/."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("project")
        parser.add_argument("batch", type=int)
        parser.add_argument("--format", required=True, choices=sorted(FORMATS))
        parser.add_argument("--apply-corrections", action="store_true")
        parser.add_argument("--drop-wrong", action="store_true")
        parser.add_argument("--parquet", action="store_true", help="Also write the rows as Parquet.")
        parser.add_argument("--licence", default="", help="The dataset card's licence (an SPDX id, e.g. cc-by-4.0).")
        parser.add_argument("--no-progress", action="store_true", help="No progress bar.")
        parser.add_argument("--as-user", default="", help="The user the job is recorded for (default: none).")

    def handle(self, *args: Any, **options: Any) -> None:
        batch = Batch.objects.filter(project__slug=options["project"], pk=options["batch"]).first()
        if batch is None or not Project.objects.filter(slug=options["project"]).exists():
            raise CommandError(f"no batch {options['batch']} in project {options['project']!r}")
        actor = User.objects.filter(username=options["as_user"]).first() if options["as_user"] else None
        try:
            job = export_job_create(
                actor=actor,  # type: ignore[arg-type]
                batch=batch,
                format=options["format"],
                options={
                    "apply_corrections": options["apply_corrections"],
                    "drop_wrong": options["drop_wrong"],
                    "parquet": options["parquet"],
                    "licence": options["licence"],
                },
            )
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        self.stdout.write(f"export #{job.pk}: {job.records_total} trajectories\n")
        show = not options["no_progress"] and self.stderr.isatty()
        try:
            job = export_job_run(job_id=job.pk, on_progress=self._progress() if show else None)
        except Exception as exc:  # recorded on the job; said here without a traceback
            raise CommandError(f"export #{job.pk} failed: {type(exc).__name__}: {exc}") from None
        finally:
            if show:
                self.stderr.write("")
        job = ExportJob.objects.get(pk=job.pk)
        for f in job.files:
            self.stdout.write(f"{export_dir(job) / f['name']}\n")

    def _progress(self) -> Callable[[int, int], None]:
        def show(done: int, total: int) -> None:
            percent = 100 * done // total if total else 100
            bar = "#" * (percent // 5) + "." * (20 - percent // 5)
            self.stderr.write(f"\r[{bar}] {percent:3d}% {done} of {total} trajectories", ending="")
            self.stderr.flush()

        return show
