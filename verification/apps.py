from django.apps import AppConfig


class VerificationConfig(AppConfig):
    name = "verification"
    verbose_name = "Verification"

    def ready(self) -> None:
        from trajectories.hooks import register_trajectories_imported
        from verification.services import on_trajectories_imported

        register_trajectories_imported(on_trajectories_imported)
