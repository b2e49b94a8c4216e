from django.conf import settings
from django.db import models
from django.db.models import Q


class ProjectKind(models.TextChoices):
    TOOL_USE = "tool_use", "Tool use"
    CODING = "coding", "Coding"


class Project(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=80, unique=True)
    kind = models.CharField(max_length=16, choices=ProjectKind.choices)
    description = models.TextField(blank=True)
    guidelines = models.TextField(blank=True, help_text="Markdown; sanitised when shown.")
    guideline_version = models.PositiveIntegerField(default=1)
    overlap = models.PositiveSmallIntegerField(default=3)
    agreement_target = models.FloatField(default=0.82)
    calibration_threshold = models.FloatField(default=0.75)
    gold_rate = models.FloatField(default=0.05)
    review_rate = models.FloatField(default=0.10)
    rubric_axes = models.JSONField(default=list)
    failure_taxonomy = models.JSONField(default=list)
    consensus_rules = models.JSONField(
        default=dict, blank=True, help_text="Overrides of the consensus, routing and agreement defaults (audit.rules)."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=Q(overlap__gte=1) & Q(overlap__lte=9), name="project_overlap_range"),
            models.CheckConstraint(
                condition=Q(agreement_target__gte=-1) & Q(agreement_target__lte=1), name="project_target_range"
            ),
            models.CheckConstraint(
                condition=Q(calibration_threshold__gte=-1) & Q(calibration_threshold__lte=1),
                name="project_threshold_range",
            ),
            models.CheckConstraint(condition=Q(gold_rate__gte=0) & Q(gold_rate__lte=1), name="project_gold_rate_range"),
            models.CheckConstraint(
                condition=Q(review_rate__gte=0) & Q(review_rate__lte=1), name="project_review_rate_range"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Role(models.TextChoices):
    ANNOTATOR = "annotator", "Annotator"
    REVIEWER = "reviewer", "Reviewer"
    QA_LEAD = "qa_lead", "QA lead"
    PROJECT_MANAGER = "project_manager", "Project manager"


class Membership(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "project"], name="membership_one_per_user_project")]
        indexes = [models.Index(fields=["project", "role"])]

    def __str__(self) -> str:
        return f"{self.user} · {self.project} · {self.get_role_display()}"


class AuditEvent(models.Model):
    """Append-only log of every write. The database refuses UPDATE and DELETE (see migrations)."""

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    project = models.ForeignKey(Project, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    verb = models.CharField(max_length=80)
    target_type = models.CharField(max_length=80)
    target_id = models.CharField(max_length=64)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["project", "-created_at"]), models.Index(fields=["target_type", "target_id"])]

    def __str__(self) -> str:
        return f"{self.verb} {self.target_type}:{self.target_id}"
