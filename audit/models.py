from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from core.models import Project
from trajectories.models import Step, Trajectory


class ConsensusMethod(models.TextChoices):
    UNANIMOUS = "unanimous", "3 of 3"
    MAJORITY = "majority", "2 of 3"
    SINGLE = "single", "One annotator"
    ADJUDICATED = "adjudicated", "Adjudicated"


class Consensus(models.Model):
    """The settled value of one label field on one step (or on the trajectory when step is null).

    Field keys: `argument:<name>`, `corrected:<name>`, `tool_verdict`, `correct_tool`,
    `env_feedback`, `failure_modes`, `rubric:<axis>`, `process_reward`; on the trajectory
    `goal_completed`, `overall_success`, `efficiency`, `error_handling`, `first_failing_step`.
    """

    trajectory = models.ForeignKey(Trajectory, on_delete=models.CASCADE, related_name="consensus")
    step = models.ForeignKey(Step, on_delete=models.CASCADE, null=True, blank=True, related_name="consensus")
    field = models.CharField(max_length=120)
    value = models.JSONField(null=True)
    method = models.CharField(max_length=16, choices=ConsensusMethod.choices)
    agreement = models.CharField(max_length=16, blank=True, help_text='How many votes hold the value, e.g. "2/3".')
    source_labels = models.JSONField(default=list, help_text="Ids of the labels it was reached from.")
    outliers = models.JSONField(default=list, blank=True, help_text="Ids of labels flagged as outliers.")
    escalation = models.ForeignKey(
        "Escalation", on_delete=models.SET_NULL, null=True, blank=True, related_name="+", help_text="When adjudicated."
    )
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


class EscalationSource(models.TextChoices):
    CONSENSUS = "consensus", "No consensus"
    REVIEW = "review", "Sent by a reviewer"


class DecisionKind(models.TextChoices):
    ANNOTATOR_ERROR = "annotator_error", "Annotator error"
    AMBIGUOUS = "ambiguous", "Ambiguous (guideline gap)"


class Escalation(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="escalations")
    trajectory = models.ForeignKey(Trajectory, on_delete=models.CASCADE, related_name="escalations")
    step = models.ForeignKey(Step, on_delete=models.CASCADE, null=True, blank=True, related_name="escalations")
    field = models.CharField(max_length=120)
    source = models.CharField(max_length=16, choices=EscalationSource.choices, default=EscalationSource.CONSENSUS)
    reason = models.CharField(max_length=200)
    tool_name = models.CharField(max_length=200, blank=True, help_text="The step's tool, for the slice filter.")
    label_ids = models.JSONField(default=list, help_text="The labels shown as A, B, C, in that order.")
    status = models.CharField(max_length=16, choices=EscalationStatus.choices, default=EscalationStatus.OPEN)
    assigned_to = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    decision = models.JSONField(null=True, blank=True)
    decision_source = models.CharField(max_length=8, blank=True, help_text="A, B, C … or own")
    decision_kind = models.CharField(max_length=20, choices=DecisionKind.choices, blank=True)
    decision_reason = models.TextField(blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["trajectory", "step", "field", "source"],
                condition=Q(step__isnull=False),
                name="escalation_unique_step_field",
            ),
            models.UniqueConstraint(
                fields=["trajectory", "field", "source"],
                condition=Q(step__isnull=True),
                name="escalation_unique_trajectory_field",
            ),
            models.CheckConstraint(
                condition=Q(status="open") | ~Q(decision_kind=""), name="escalation_resolved_has_kind"
            ),
        ]
        indexes = [
            models.Index(fields=["project", "status", "created_at"]),
            models.Index(fields=["assigned_to", "status", "created_at"]),
        ]

    def __str__(self) -> str:
        return f"escalation {self.pk}: {self.field}"


class ReviewStatus(models.TextChoices):
    PENDING = "pending", "Waiting for a reviewer"
    CONFIRMED = "confirmed", "Confirmed"
    SENT = "sent", "Sent to the QA lead"


class Review(models.Model):
    """A consensus trajectory sampled for a second look (the project's review rate)."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="reviews")
    trajectory = models.OneToOneField(Trajectory, on_delete=models.CASCADE, related_name="review")
    status = models.CharField(max_length=16, choices=ReviewStatus.choices, default=ReviewStatus.PENDING)
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    note = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["project", "status"])]

    def __str__(self) -> str:
        return f"review of {self.trajectory_id}"


class AgreementRun(models.Model):
    """One recomputation of a project's agreement figures."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="agreement_runs")
    started_at = models.DateTimeField(default=timezone.now, help_text="When reading the labels began.")
    label_rows = models.PositiveIntegerField(default=0)
    point_ms = models.PositiveIntegerField(default=0)
    bootstrap_ms = models.PositiveIntegerField(default=0)
    definition = models.JSONField(default=dict, help_text="What the figures mean (coefficient, fields, target).")

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        return f"agreement of {self.project_id} at {self.started_at}"


class AgreementSnapshot(models.Model):
    run = models.ForeignKey(AgreementRun, on_delete=models.CASCADE, related_name="snapshots", null=True)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="agreement_snapshots")
    scope = models.CharField(max_length=40, help_text="project | slice | annotator | annotator_gold | pair")
    slice_key = models.CharField(max_length=200, blank=True)
    measure = models.CharField(max_length=80, default="", help_text="target | rubric:<axis> | tag:<key> …")
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    other = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    coefficient = models.CharField(max_length=40)
    value = models.FloatField(null=True)
    reason = models.CharField(max_length=80, blank=True, help_text="Why there is no value.")
    n_items = models.PositiveIntegerField()
    n_pairable = models.PositiveIntegerField(default=0)
    raw_agreement = models.FloatField(null=True, blank=True)
    ac1 = models.FloatField(null=True, blank=True)
    ci_low = models.FloatField(null=True, blank=True)
    ci_high = models.FloatField(null=True, blank=True)
    computed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            models.Index(fields=["project", "scope", "-computed_at"]),
            models.Index(fields=["run", "scope"]),
        ]

    def __str__(self) -> str:
        return f"{self.coefficient} {self.scope} {self.slice_key}"


class CalibrationFlag(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="calibration_flags")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    slice_key = models.CharField(max_length=200)
    value = models.FloatField()
    upper_bound = models.FloatField()
    n_items = models.PositiveIntegerField(default=0)
    cleared_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    cleared_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project", "annotator", "slice_key"],
                condition=Q(cleared_at__isnull=True),
                name="calibrationflag_one_open_per_slice",
            )
        ]

    def __str__(self) -> str:
        return f"{self.annotator} below threshold on {self.slice_key}"
