from django.db import models
from django.db.models import Q

from trajectories.models import Step, Trajectory


class CheckKind(models.TextChoices):
    SCHEMA = "schema", "Schema check"
    GROUNDING = "grounding", "Grounding check"
    REPLAY = "replay", "Sandbox replay"
    FINAL_STATE = "final_state", "Final-state reward"
    CONTAINER = "container", "Container run"


class CheckStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    PASSED = "passed", "Passed"
    FLAGGED = "flagged", "Flagged"
    ERROR = "error", "Error"


class CheckRun(models.Model):
    """Machine evidence about a trajectory or one of its steps. Never a label."""

    trajectory = models.ForeignKey(Trajectory, on_delete=models.CASCADE, related_name="check_runs")
    step = models.ForeignKey(Step, on_delete=models.CASCADE, null=True, blank=True, related_name="check_runs")
    kind = models.CharField(max_length=16, choices=CheckKind.choices)
    status = models.CharField(max_length=16, choices=CheckStatus.choices, default=CheckStatus.QUEUED)
    verifier_version = models.CharField(max_length=40)
    inputs_sha256 = models.CharField(max_length=64)
    result = models.JSONField(default=dict, blank=True)
    logs = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["trajectory", "step", "kind"]
        constraints = [
            models.UniqueConstraint(
                fields=["trajectory", "step", "kind", "verifier_version", "inputs_sha256"],
                condition=Q(step__isnull=False),
                name="checkrun_unique_step_inputs",
            ),
            models.UniqueConstraint(
                fields=["trajectory", "kind", "verifier_version", "inputs_sha256"],
                condition=Q(step__isnull=True),
                name="checkrun_unique_trajectory_inputs",
            ),
        ]
        indexes = [models.Index(fields=["trajectory", "kind"])]

    def __str__(self) -> str:
        return f"{self.kind} check on {self.trajectory_id}"
