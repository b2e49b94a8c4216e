from django.conf import settings
from django.db import models
from django.db.models import Q

from core.models import Project
from trajectories.models import Step, Trajectory


class AssignmentStatus(models.TextChoices):
    ACTIVE = "active", "In progress"
    SUBMITTED = "submitted", "Submitted"
    SKIPPED = "skipped", "Skipped"
    EXPIRED = "expired", "Expired"


class Assignment(models.Model):
    """A claim of one annotator on one trajectory; a lease that expires unless renewed."""

    trajectory = models.ForeignKey(Trajectory, on_delete=models.CASCADE, related_name="assignments")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="assignments")
    status = models.CharField(max_length=16, choices=AssignmentStatus.choices, default=AssignmentStatus.ACTIVE)
    is_gold = models.BooleanField(default=False)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    skip_reason = models.TextField(blank=True)
    time_spent_ms = models.PositiveBigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    submitted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["trajectory", "annotator"], name="assignment_one_per_annotator"),
            models.CheckConstraint(
                condition=~Q(status="skipped") | ~Q(skip_reason=""), name="assignment_skip_has_reason"
            ),
        ]
        indexes = [
            models.Index(fields=["annotator", "status"]),
            models.Index(fields=["trajectory", "status"]),
        ]

    def __str__(self) -> str:
        return f"{self.annotator} on {self.trajectory_id}"


class ArgumentVerdict(models.TextChoices):
    VALID = "valid", "Valid"
    INVALID = "invalid", "Invalid"
    UNSURE = "unsure", "Unsure"


class ToolVerdict(models.TextChoices):
    RIGHT = "right", "Right tool"
    WRONG = "wrong", "Wrong tool"


class EnvFeedback(models.TextChoices):
    SUCCESS = "success", "Success"
    PARTIAL = "partial", "Partial"
    FAILURE = "failure", "Failure"


STEP_LABEL_FIELDS = (
    "argument_verdicts",
    "corrected_arguments",
    "tool_verdict",
    "correct_tool",
    "failure_modes",
    "rubric",
    "process_reward",
    "env_feedback",
    "next_action",
    "comment",
)  # what an annotator sets on a step (StepLabel's value fields)


class StepLabel(models.Model):
    """One annotator's labels on one step. `version` rises on every save (no lost updates)."""

    assignment = models.ForeignKey(Assignment, on_delete=models.CASCADE, related_name="step_labels")
    step = models.ForeignKey(Step, on_delete=models.CASCADE, related_name="labels")
    argument_verdicts = models.JSONField(default=dict, blank=True, help_text="{argument: valid|invalid|unsure}")
    corrected_arguments = models.JSONField(default=dict, blank=True, help_text="{argument: corrected value}")
    tool_verdict = models.CharField(max_length=8, choices=ToolVerdict.choices, blank=True)
    correct_tool = models.CharField(max_length=200, blank=True)
    failure_modes = models.JSONField(default=list, blank=True, help_text='Taxonomy keys, or ["none"].')
    rubric = models.JSONField(default=dict, blank=True, help_text="{axis: 1..5}")
    process_reward = models.SmallIntegerField(null=True, blank=True)
    env_feedback = models.CharField(max_length=8, choices=EnvFeedback.choices, blank=True)
    next_action = models.TextField(blank=True)
    comment = models.TextField(blank=True)
    version = models.PositiveIntegerField(default=1)
    guideline_version = models.PositiveIntegerField(default=1)
    time_spent_ms = models.PositiveBigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["assignment", "step"], name="steplabel_one_per_step"),
            models.CheckConstraint(
                condition=Q(process_reward__isnull=True) | Q(process_reward__in=[-1, 0, 1]),
                name="steplabel_process_reward_range",
            ),
        ]
        indexes = [models.Index(fields=["step"])]

    def __str__(self) -> str:
        return f"label on step {self.step_id} by assignment {self.assignment_id}"


class TrajectoryLabel(models.Model):
    assignment = models.OneToOneField(Assignment, on_delete=models.CASCADE, related_name="trajectory_label")
    goal_completed = models.BooleanField(null=True)
    overall_success = models.BooleanField(null=True)
    efficiency = models.PositiveSmallIntegerField(null=True, blank=True)
    error_handling = models.PositiveSmallIntegerField(null=True, blank=True)
    first_failing_step = models.ForeignKey(Step, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    comment = models.TextField(blank=True)
    version = models.PositiveIntegerField(default=1)
    guideline_version = models.PositiveIntegerField(default=1)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(efficiency__isnull=True) | Q(efficiency__gte=1) & Q(efficiency__lte=5),
                name="trajectorylabel_efficiency_range",
            ),
            models.CheckConstraint(
                condition=Q(error_handling__isnull=True) | Q(error_handling__gte=1) & Q(error_handling__lte=5),
                name="trajectorylabel_error_handling_range",
            ),
        ]

    def __str__(self) -> str:
        return f"verdict by assignment {self.assignment_id}"


class GoldSource(models.TextChoices):
    MANUAL = "manual", "Made by a project manager"
    ADJUDICATED = "adjudicated", "From an adjudicated escalation"


class GoldItem(models.Model):
    """A trajectory with reference labels for every step and field (a honeypot)."""

    trajectory = models.OneToOneField(Trajectory, on_delete=models.CASCADE, related_name="gold")
    reference = models.JSONField(help_text="Reference labels, keyed by step index.")
    source = models.CharField(max_length=16, choices=GoldSource.choices)
    explanation = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"gold {self.trajectory_id}"


class CalibrationRequirement(models.Model):
    """While active, the annotator is served gold items of this slice."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="calibration_requirements")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    slice_key = models.CharField(max_length=200)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    cleared_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project", "annotator", "slice_key"],
                condition=Q(active=True),
                name="calibration_one_active_per_slice",
            )
        ]

    def __str__(self) -> str:
        return f"{self.annotator} · {self.slice_key}"
