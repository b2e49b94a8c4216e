from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "audit"
    verbose_name = "Audit"

    def ready(self) -> None:
        from annotation.hooks import register_trajectory_annotated
        from audit.services.enqueue import on_trajectory_annotated

        register_trajectory_annotated(on_trajectory_annotated)
