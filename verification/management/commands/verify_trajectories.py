"""`manage.py verify_trajectories PROJECT [--kind K …] [--queue] [--as USER]`.

Runs the machine checks (schema, grounding, replay, final_state) on every run of the project,
in this process with a progress line, or — with --queue — hands them to the Celery workers
(the same service as the page's "Re-verify" button). Re-running with unchanged inputs is a
no-op. Exit codes: 0 done, 2 bad arguments.
"""

from __future__ import annotations

import sys
from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.models import Project
from trajectories.models import Trajectory
from verification.services import MACHINE_KINDS, project_verify_request, trajectory_verify

BATCH = 50


class Command(BaseCommand):
    help = "Run the machine checks on a project's runs."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("project", help="The project's slug.")
        parser.add_argument(
            "--kind", action="append", default=[], choices=[k.value for k in MACHINE_KINDS], help="Only these checks."
        )
        parser.add_argument("--queue", action="store_true", help="Queue the work for the Celery workers instead.")
        parser.add_argument("--as", dest="username", default="", help="Record the request as this user.")

    def handle(self, *args: Any, **options: Any) -> None:
        project = Project.objects.filter(slug=options["project"]).first()
        if project is None:
            raise CommandError(f"no project with slug {options['project']!r}", returncode=2)
        kinds = options["kind"] or None
        if options["queue"]:
            actor = User.objects.filter(username=options["username"]).first() if options["username"] else None
            try:
                count = project_verify_request(actor=actor, project=project, kinds=kinds)
            except ValidationError as exc:
                raise CommandError("; ".join(exc.messages), returncode=2) from exc
            self.stdout.write(f"queued the checks of {count} runs of {project.slug}")
            return
        ids = list(Trajectory.objects.filter(project=project).order_by("id").values_list("id", flat=True))
        totals: dict[str, int] = {}
        progress = sys.stderr.isatty()
        for done, trajectory_id in enumerate(ids, 1):
            for kind, what in trajectory_verify(trajectory_id=trajectory_id, kinds=kinds).items():
                key = f"{kind} {what.split(':')[0]}"
                totals[key] = totals.get(key, 0) + 1
            if progress and (done % BATCH == 0 or done == len(ids)):
                width = 30
                filled = width * done // max(1, len(ids))
                sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{len(ids)} runs")
                sys.stderr.flush()
        if progress:
            sys.stderr.write("\n")
        self.stdout.write(f"verified {len(ids)} runs of {project.slug}")
        for key in sorted(totals):
            self.stdout.write(f"  {key}: {totals[key]}")
