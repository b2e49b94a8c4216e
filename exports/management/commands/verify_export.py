"""`manage.py verify_export MANIFEST`: check an export's files against its manifest, byte for byte."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from exports.services.jobs import verify_manifest


class Command(BaseCommand):
    help = "Check the files beside an export manifest against the sha256 of every file and record it lists."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("manifest", type=Path)

    def handle(self, *args: Any, **options: Any) -> None:
        problems = verify_manifest(options["manifest"])
        if problems:
            raise CommandError("the export does not match its manifest:\n" + "\n".join(problems))
        self.stdout.write(f"{options['manifest']}: every file and record matches the manifest\n")
