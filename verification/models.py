from django.db import models
from django.db.models import Q

from core.models import Project
from trajectories.models import Step, ToolRegistry, Trajectory


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


class FindingCode(models.TextChoices):
    UNKNOWN_TOOL = "unknown_tool", "Unknown tool"
    UNPARSEABLE_ARGUMENTS = "unparseable_arguments", "Arguments are not JSON"
    ARGUMENTS_NOT_OBJECT = "arguments_not_object", "Arguments are not an object"
    MISSING_REQUIRED = "missing_required", "Missing required parameter"
    UNEXPECTED_PROPERTY = "unexpected_property", "Unexpected property"
    WRONG_TYPE = "wrong_type", "Wrong type"
    NOT_IN_ENUM = "not_in_enum", "Value outside the enum"
    BAD_FORMAT = "bad_format", "Value breaks the format"
    BAD_PATTERN = "bad_pattern", "Value breaks the pattern"
    OUT_OF_RANGE = "out_of_range", "Value out of range"
    SCHEMA_VIOLATION = "schema_violation", "Other schema rule broken"
    UNGROUNDED_VALUE = "ungrounded_value", "Value seen nowhere before"
    CONTRADICTS_OBSERVATION = "contradicts_observation", "Value contradicts an earlier observation"
    REPLAY_MISMATCH = "replay_mismatch", "Replayed observation differs"
    REPLAY_ERROR = "replay_error", "Replay failed"
    MOCK_CONFLICT = "mock_conflict", "Recorded observations conflict"
    SLOW_CALL = "slow_call", "Slower than the tool's p99"
    HTTP_STATUS = "http_status", "Replayed call did not answer 2xx"
    SQL_RESULT_MISMATCH = "sql_result_mismatch", "SQL result differs from the gold query's"
    FINAL_STATE_MISMATCH = "final_state_mismatch", "Final state differs from the gold actions'"
    OUTPUT_MISSING = "output_missing", "Expected output never said"


class Finding(models.Model):
    """One thing a check found, with its evidence. Offered to annotators as a suggestion; never a label."""

    check_run = models.ForeignKey(CheckRun, on_delete=models.CASCADE, related_name="findings")
    trajectory = models.ForeignKey(Trajectory, on_delete=models.CASCADE, related_name="findings")
    step = models.ForeignKey(Step, on_delete=models.CASCADE, null=True, blank=True, related_name="findings")
    code = models.CharField(max_length=40, choices=FindingCode.choices)
    failure_mode = models.CharField(max_length=60, blank=True, help_text="The taxonomy key this suggests.")
    argument = models.CharField(max_length=200, blank=True, help_text="The top-level argument it is about.")
    pointer = models.CharField(max_length=500, blank=True, help_text="JSON pointer into the arguments.")
    rule = models.CharField(max_length=500, blank=True, help_text="The schema rule (keyword: value) or check rule.")
    value = models.JSONField(null=True, blank=True, help_text="The offending value.")
    message = models.TextField()
    evidence = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["trajectory", "step", "id"]
        indexes = [models.Index(fields=["trajectory", "step"]), models.Index(fields=["code"])]

    def __str__(self) -> str:
        return f"{self.code} on {self.step_id or self.trajectory_id}"


class ReplayConfig(models.Model):
    """How a registry's calls are replayed and which verifiable signals count. Editable after freezing:
    it is how the machines check, not what the agent could call."""

    registry = models.OneToOneField(ToolRegistry, on_delete=models.CASCADE, related_name="replay_config")
    environment = models.CharField(max_length=100, blank=True, help_text="A registered sandbox environment.")
    seed_key = models.CharField(max_length=100, default="env_seed", help_text="Run metadata key with the seed.")
    default_seed = models.IntegerField(null=True, blank=True)
    use_mock_store = models.BooleanField(default=True, help_text="Replay read-only calls against recorded ones.")
    http_base_url = models.URLField(blank=True, help_text="An HTTP sandbox (OpenAPI server URL); never by default.")
    http_routes = models.JSONField(default=dict, blank=True, help_text="tool → {method, path}; else POST /<tool>.")
    http_timeout_s = models.FloatField(default=5.0)
    http_retries = models.PositiveSmallIntegerField(default=2)
    volatile_keys = models.JSONField(
        default=list, blank=True, help_text="Keys or JSON pointers ignored when observations are compared."
    )
    check_http_status = models.BooleanField(default=False, help_text="A non-2xx replayed call is a finding.")
    sql_tools = models.JSONField(
        default=list, blank=True, help_text="Tools whose result rows are compared with the gold query's."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(http_timeout_s__gt=0) & Q(http_timeout_s__lte=60), name="replayconfig_timeout_range"
            ),
            models.CheckConstraint(condition=Q(http_retries__lte=5), name="replayconfig_retries_range"),
        ]

    def __str__(self) -> str:
        return f"replay config of {self.registry}"


class RecordedObservation(models.Model):
    """The mock store: what a read-only call answered at rollout time, keyed by tool + canonical arguments."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    tool_name = models.CharField(max_length=200)
    arguments_sha256 = models.CharField(max_length=64)
    arguments = models.JSONField()
    observation_sha256 = models.CharField(max_length=64)
    observation = models.TextField()
    step = models.ForeignKey(Step, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project", "tool_name", "arguments_sha256", "observation_sha256"], name="recorded_unique"
            ),
        ]
        indexes = [models.Index(fields=["project", "tool_name", "arguments_sha256"])]

    def __str__(self) -> str:
        return f"{self.tool_name} {self.arguments_sha256[:12]}"
