"""`manage.py export_batch PROJECT BATCH_ID --format F`: export a batch here, with progress."""

from __future__ import annotations

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
                options={"apply_corrections": options["apply_corrections"], "drop_wrong": options["drop_wrong"]},
            )
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        self.stdout.write(f"export #{job.pk}: {job.records_total} trajectories\n")
        job = export_job_run(job_id=job.pk)
        job = ExportJob.objects.get(pk=job.pk)
        for f in job.files:
            self.stdout.write(f"{export_dir(job) / f['name']}\n")
