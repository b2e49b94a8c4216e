from django.conf import settings
from django.db import models
from django.db.models import Q

from core.models import Project


class SideEffects(models.TextChoices):
    NONE = "none", "None"
    READ = "read", "Read"
    WRITE = "write", "Write"
    DESTRUCTIVE = "destructive", "Destructive"


class ToolRegistry(models.Model):
    """A versioned set of callable tools. Frozen registries are immutable (sha256 of canonical JSON)."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="registries")
    version = models.PositiveIntegerField()
    name = models.CharField(max_length=200, blank=True)
    source_format = models.CharField(max_length=40, blank=True)
    frozen_at = models.DateTimeField(null=True, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["project", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["project", "version"], name="registry_unique_version"),
            models.CheckConstraint(
                condition=Q(frozen_at__isnull=True, sha256="") | Q(frozen_at__isnull=False) & ~Q(sha256=""),
                name="registry_frozen_has_hash",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.project} registry v{self.version}"

    @property
    def is_frozen(self) -> bool:
        return self.frozen_at is not None


class Tool(models.Model):
    registry = models.ForeignKey(ToolRegistry, on_delete=models.CASCADE, related_name="tools")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    parameters = models.JSONField(default=dict)
    returns = models.JSONField(null=True, blank=True)
    side_effects = models.CharField(max_length=16, choices=SideEffects.choices, default=SideEffects.READ)
    latency_p99_ms = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["registry", "name"]
        constraints = [models.UniqueConstraint(fields=["registry", "name"], name="tool_unique_name")]

    def __str__(self) -> str:
        return self.name


class Band(models.TextChoices):
    ATOMIC = "atomic", "Atomic"
    COMPOSITE = "composite", "Composite"
    AMBIGUOUS = "ambiguous", "Ambiguous"


class Goal(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="goals")
    external_id = models.CharField(max_length=200, blank=True)
    prompt = models.TextField()
    band = models.CharField(max_length=16, choices=Band.choices, blank=True)
    tags = models.JSONField(default=list, blank=True)
    expected_actions = models.JSONField(null=True, blank=True)
    expected_outputs = models.JSONField(null=True, blank=True)
    prompt_sha256 = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["project", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "external_id"], condition=~Q(external_id=""), name="goal_unique_external_id"
            ),
        ]
        indexes = [models.Index(fields=["project", "prompt_sha256"]), models.Index(fields=["project", "band"])]

    def __str__(self) -> str:
        return self.external_id or self.prompt[:60]


class ReproductionStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    REPRODUCED = "reproduced", "Reproduced"
    FAILED = "failed", "Failed"


class SweTask(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="swe_tasks")
    instance_id = models.CharField(max_length=300)
    repo = models.CharField(max_length=300)
    base_commit = models.CharField(max_length=64)
    version = models.CharField(max_length=40, blank=True)
    problem_statement = models.TextField()
    gold_patch = models.TextField(blank=True)
    test_patch = models.TextField(blank=True)
    fail_to_pass = models.JSONField(default=list)
    pass_to_pass = models.JSONField(default=list)
    image = models.CharField(max_length=300, blank=True)
    reproduction_status = models.CharField(
        max_length=16, choices=ReproductionStatus.choices, default=ReproductionStatus.PENDING
    )
    contamination_flags = models.JSONField(default=list, blank=True)
    contamination_override = models.TextField(
        blank=True, help_text="Why a project manager let a flagged task into annotation anyway."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["project", "instance_id"]
        constraints = [models.UniqueConstraint(fields=["project", "instance_id"], name="swetask_unique_instance")]

    def __str__(self) -> str:
        return self.instance_id


class LeakList(models.Model):
    """Keys of SWE tasks known to have leaked (e.g. into a model's training data), uploaded by a PM.

    `problem_sha256s` and `patch_sha256s` hold hex sha256 digests of the *normalised* problem
    statement and gold patch (trajectories.services.swe_tasks: normalise_problem_statement,
    normalise_patch), so a match does not depend on case, spacing or line endings.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="leak_lists")
    name = models.CharField(max_length=200)
    instance_ids = models.JSONField(default=list, blank=True)
    patch_sha256s = models.JSONField(default=list, blank=True)
    problem_sha256s = models.JSONField(default=list, blank=True)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["project", "name"]
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="leaklist_unique_name")]

    def __str__(self) -> str:
        return self.name

    @property
    def entry_count(self) -> int:
        return len(self.instance_ids) + len(self.patch_sha256s) + len(self.problem_sha256s)


class SourceFile(models.Model):
    """An uploaded file, kept byte for byte (zstd-compressed on disk), identified by sha256."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="source_files")
    name = models.CharField(max_length=255)
    sha256 = models.CharField(max_length=64)
    size = models.BigIntegerField()
    stored = models.FileField(upload_to="sources/%Y/%m/")
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["project", "sha256"])]

    def __str__(self) -> str:
        return self.name


class ImportStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class ImportJob(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="import_jobs")
    source_file = models.ForeignKey(SourceFile, on_delete=models.PROTECT, related_name="import_jobs")
    format_requested = models.CharField(max_length=40, blank=True, help_text="Empty: detect.")
    format_detected = models.CharField(max_length=40, blank=True)
    default_model = models.CharField(max_length=200, blank=True, help_text="For runs whose file names no model.")
    default_scaffold = models.CharField(max_length=100, blank=True, help_text="For runs whose file names no scaffold.")
    status = models.CharField(max_length=16, choices=ImportStatus.choices, default=ImportStatus.QUEUED)
    bytes_total = models.BigIntegerField(default=0)
    bytes_done = models.BigIntegerField(default=0)
    records_seen = models.PositiveIntegerField(default=0)
    trajectories_imported = models.PositiveIntegerField(default=0)
    steps_imported = models.PositiveIntegerField(default=0)
    duplicates = models.PositiveIntegerField(default=0)
    rejected = models.PositiveIntegerField(default=0)
    unknown_tool_calls = models.PositiveIntegerField(default=0)
    scrubbed = models.JSONField(
        default=dict, blank=True, help_text="Secrets removed before storage: {where they were: how many}."
    )
    errors = models.JSONField(default=list, blank=True, help_text="Located errors, the first 1,000.")
    error = models.TextField(blank=True, help_text="Why the whole job failed, if it did.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["project", "-created_at"])]

    def __str__(self) -> str:
        return f"import #{self.pk} of {self.source_file}"

    @property
    def percent(self) -> int:
        if self.status == ImportStatus.DONE:
            return 100
        if not self.bytes_total:
            return 0
        return min(99, int(100 * self.bytes_done / self.bytes_total))

    @property
    def is_finished(self) -> bool:
        return self.status in {ImportStatus.DONE, ImportStatus.FAILED}


class TrajectoryStatus(models.TextChoices):
    IMPORTED = "imported", "Imported"
    READY = "ready", "Ready for annotation"
    IN_ANNOTATION = "in_annotation", "In annotation"
    ANNOTATED = "annotated", "Annotated"
    ESCALATED = "escalated", "Escalated"
    AUDITED = "audited", "Audited"
    REJECTED = "rejected", "Rejected"


class PayloadDictionary(models.Model):
    """What an import compresses its later record payloads against: its first records' bytes, as stored
    (scrubbed), used as a zstd raw-content dictionary (trajectories.blobs). A payload blob names its own."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    data = models.BinaryField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"payload dictionary #{self.pk}"


class Trajectory(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="trajectories")
    goal = models.ForeignKey(Goal, on_delete=models.SET_NULL, null=True, blank=True, related_name="trajectories")
    swe_task = models.ForeignKey(SweTask, on_delete=models.SET_NULL, null=True, blank=True, related_name="trajectories")
    source_file = models.ForeignKey(
        SourceFile, on_delete=models.PROTECT, null=True, blank=True, related_name="trajectories"
    )
    source_pointer = models.CharField(max_length=100, blank=True, help_text="Where the record is in the file.")
    source_format = models.CharField(max_length=40)
    importer_version = models.CharField(max_length=20)
    model_name = models.CharField(max_length=200, blank=True)
    scaffold = models.CharField(max_length=100, blank=True)
    rollout_id = models.CharField(max_length=200, blank=True)
    trial = models.IntegerField(null=True, blank=True)
    goal_text = models.TextField(blank=True)
    content_sha256 = models.CharField(max_length=64, help_text="sha256 of the run's canonical JSON.")
    payload = models.BinaryField(
        help_text="The record's original bytes, zstd-compressed, alone or against a PayloadDictionary (trajectories.blobs)."
    )
    payload_sha256 = models.CharField(max_length=64)
    chat = models.BinaryField(
        null=True,
        blank=True,
        help_text="The steps as chat messages, built at import for the OpenAI SFT export (trajectories.chat).",
    )
    final_answer = models.TextField(blank=True)
    outcome_reward = models.FloatField(null=True, blank=True)
    outcome = models.JSONField(default=dict, blank=True)
    verified_reward = models.FloatField(
        null=True, blank=True, help_text="Final-state reward a verifier computed (beside the file's own)."
    )
    metadata = models.JSONField(default=dict, blank=True)
    alternatives = models.JSONField(
        default=list, blank=True, help_text="Branches the agent explored and abandoned (e.g. ToolBench DFSDT)."
    )
    status = models.CharField(max_length=16, choices=TrajectoryStatus.choices, default=TrajectoryStatus.IMPORTED)
    step_count = models.PositiveIntegerField(default=0)
    unknown_tool_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["project", "content_sha256"], name="trajectory_unique_content"),
        ]
        indexes = [
            models.Index(fields=["project", "status", "-id"]),
            models.Index(fields=["project", "model_name"]),
            models.Index(fields=["project", "goal"]),
        ]

    def __str__(self) -> str:
        return f"trajectory #{self.pk}"


class StepKind(models.TextChoices):
    TOOL_CALL = "tool_call", "Tool call"
    RESPOND = "respond", "Respond"


class Step(models.Model):
    """One agent decision with the seven fields (DESIGN.md "Steps")."""

    trajectory = models.ForeignKey(Trajectory, on_delete=models.CASCADE, related_name="steps")
    index = models.PositiveIntegerField()
    kind = models.CharField(max_length=16, choices=StepKind.choices)
    turn_id = models.CharField(max_length=100, blank=True)
    state = models.JSONField(default=list, blank=True)
    plan = models.TextField(blank=True)
    tool_name = models.CharField(max_length=200, blank=True)
    tool_call_id = models.CharField(max_length=200, blank=True)
    tool = models.ForeignKey(Tool, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    tool_known = models.BooleanField(null=True, help_text="Null for respond steps or when no registry exists.")
    arguments = models.JSONField(null=True, blank=True)
    # NULL and "" differ here: no string was given vs an empty one (round trips keep both).
    arguments_raw = models.TextField(null=True, blank=True, help_text="As written, when the source gave a string.")  # noqa: DJ001
    arguments_error = models.CharField(max_length=300, blank=True)
    observation = models.TextField(null=True, blank=True)  # noqa: DJ001  (NULL: no result came back)
    reflection = models.TextField(blank=True)
    success_flag = models.BooleanField(null=True)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    latency_ms = models.FloatField(null=True, blank=True)
    prompt_tokens = models.IntegerField(null=True, blank=True)
    completion_tokens = models.IntegerField(null=True, blank=True)
    cost_usd = models.FloatField(null=True, blank=True)
    char_start = models.PositiveIntegerField(default=0)
    char_end = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["trajectory", "index"]
        constraints = [
            models.UniqueConstraint(fields=["trajectory", "index"], name="step_unique_index"),
            models.CheckConstraint(condition=Q(char_end__gte=models.F("char_start")), name="step_span_ordered"),
        ]

    def __str__(self) -> str:
        return f"step {self.index} of trajectory {self.trajectory_id}"
