from django.apps import AppConfig


class ExportsConfig(AppConfig):
    name = "exports"
    verbose_name = "Exports"

    def ready(self) -> None:
        from exports.services.restore import on_runs_stored
        from trajectories.hooks import register_runs_stored

        register_runs_stored(on_runs_stored)
