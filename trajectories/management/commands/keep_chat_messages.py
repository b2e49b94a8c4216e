"""`manage.py keep_chat_messages [--project SLUG]`: build the chat messages the OpenAI SFT export reads
(Trajectory.chat) for trajectories that keep none of this version, such as those imported before Stepwise
kept them. Until then their export lines are built from their steps: the same bytes, more slowly."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.models import Project
from trajectories.services.chat import chat_messages_keep


class Command(BaseCommand):
    help = "Build the kept chat messages of trajectories that have none of this version."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", default="", help="Only this project (its slug).")

    def handle(self, *args: Any, **options: Any) -> None:
        project = None
        if options["project"]:
            project = Project.objects.filter(slug=options["project"]).first()
            if project is None:
                raise CommandError(f"no project with the slug {options['project']!r}")
        done = 0

        def progress(count: int) -> None:
            nonlocal done
            done += count
            self.stdout.write(f"  {done} trajectories")

        built = chat_messages_keep(project=project, on_chunk=progress)
        self.stdout.write(self.style.SUCCESS(f"Kept the chat messages of {built} trajectories."))
