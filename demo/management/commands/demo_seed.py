"""`manage.py demo_seed`: load the demo data (idempotent) and print the demo credentials."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from demo.services import demo_seed


class Command(BaseCommand):
    help = "Create the demo users, projects, frozen tool registries, goals, SWE task and imported runs."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--run-imports-here",
            action="store_true",
            help="Run the imports in this process instead of queueing them for a Celery worker.",
        )
        parser.add_argument(
            "--wait",
            action="store_true",
            help="Queue the imports for the worker and wait until it has finished them (up to 10 minutes).",
        )
        parser.add_argument("--seed", type=int, default=7, help="Seed of the generated environment and runs.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            demo_seed(
                stdout=self.stdout,
                run_now=options["run_imports_here"],
                wait_s=600 if options["wait"] else 0,
                seed=options["seed"],
            )
        except TimeoutError as exc:
            raise CommandError(str(exc)) from exc
