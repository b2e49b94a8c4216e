from django.conf import settings
from django.db import models
from django.db.models import Q

from core.models import Project
from trajectories.models import Step, Trajectory


class ConsensusMethod(models.TextChoices):
    UNANIMOUS = "unanimous", "3 of 3"
    MAJORITY = "majority", "2 of 3"
    ADJUDICATED = "adjudicated", "Adjudicated"


class Consensus(models.Model):
    """The settled value of one label field on one step (or on the trajectory when step is null)."""

    trajectory = models.ForeignKey(Trajectory, on_delete=models.CASCADE, related_name="consensus")
    step = models.ForeignKey(Step, on_delete=models.CASCADE, null=True, blank=True, related_name="consensus")
    field = models.CharField(max_length=120)
    value = models.JSONField(null=True)
    method = models.CharField(max_length=16, choices=ConsensusMethod.choices)
    source_labels = models.JSONField(default=list, help_text="Ids of the labels it was reached from.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["trajectory", "step", "field"],
                condition=Q(step__isnull=False),
                name="consensus_unique_step_field",
            ),
            models.UniqueConstraint(
                fields=["trajectory", "field"], condition=Q(step__isnull=True), name="consensus_unique_trajectory_field"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.field} on {self.trajectory_id}"


class EscalationStatus(models.TextChoices):
    OPEN = "open", "Open"
    RESOLVED = "resolved", "Resolved"


class Escalation(models.Model):
    trajectory = models.ForeignKey(Trajectory, on_delete=models.CASCADE, related_name="escalations")
    step = models.ForeignKey(Step, on_delete=models.CASCADE, null=True, blank=True, related_name="escalations")
    field = models.CharField(max_length=120)
    reason = models.CharField(max_length=200)
    status = models.CharField(max_length=16, choices=EscalationStatus.choices, default=EscalationStatus.OPEN)
    assigned_to = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    decision = models.JSONField(null=True, blank=True)
    decision_kind = models.CharField(max_length=20, blank=True, help_text="annotator_error | ambiguous")
    decision_reason = models.TextField(blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at"]
        indexes = [models.Index(fields=["status", "assigned_to", "created_at"])]

    def __str__(self) -> str:
        return f"escalation {self.pk}: {self.field}"


class AgreementSnapshot(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="agreement_snapshots")
    scope = models.CharField(max_length=40, help_text="annotator | pair | project | slice")
    slice_key = models.CharField(max_length=200, blank=True)
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    coefficient = models.CharField(max_length=40)
    value = models.FloatField(null=True)
    n_items = models.PositiveIntegerField()
    ci_low = models.FloatField(null=True, blank=True)
    ci_high = models.FloatField(null=True, blank=True)
    computed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["project", "scope", "-computed_at"])]

    def __str__(self) -> str:
        return f"{self.coefficient} {self.scope} {self.slice_key}"


class CalibrationFlag(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="calibration_flags")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    slice_key = models.CharField(max_length=200)
    value = models.FloatField()
    upper_bound = models.FloatField()
    cleared_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    cleared_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.annotator} below threshold on {self.slice_key}"
