from typing import Any

from rest_framework import serializers

from trajectories.formats import IMPORTERS
from trajectories.formats.tools import TOOL_FORMATS
from trajectories.models import Band, Goal, ImportJob, Step, SweTask, Tool, ToolRegistry, Trajectory
from trajectories.selectors.goals import swe_task_available_for_annotation
from trajectories.services._rows import ImportReport
from trajectories.services.goals import MAX_TAG_LENGTH


class StepSerializer(serializers.ModelSerializer[Step]):
    class Meta:
        model = Step
        fields = [
            "index", "kind", "turn_id", "state", "plan", "tool_name", "tool_call_id", "tool_known", "arguments",
            "arguments_raw", "arguments_error", "observation", "reflection", "success_flag", "started_at",
            "ended_at", "latency_ms", "prompt_tokens", "completion_tokens", "cost_usd", "char_start", "char_end",
        ]  # fmt: skip


class TrajectorySerializer(serializers.ModelSerializer[Trajectory]):
    goal_external_id = serializers.CharField(source="goal.external_id", default="", read_only=True)
    band = serializers.CharField(source="goal.band", default="", read_only=True)

    class Meta:
        model = Trajectory
        fields = [
            "id", "goal_id", "goal_external_id", "band", "goal_text", "model_name", "scaffold", "rollout_id",
            "trial", "status", "step_count", "unknown_tool_count", "outcome_reward", "final_answer",
            "source_format", "importer_version", "source_pointer", "content_sha256", "payload_sha256", "created_at",
        ]  # fmt: skip


class TrajectoryDetailSerializer(TrajectorySerializer):
    steps = StepSerializer(many=True, read_only=True)

    class Meta(TrajectorySerializer.Meta):
        fields = [*TrajectorySerializer.Meta.fields, "outcome", "metadata", "alternatives", "steps"]


class ImportJobSerializer(serializers.ModelSerializer[ImportJob]):
    file = serializers.CharField(source="source_file.name", read_only=True)
    file_sha256 = serializers.CharField(source="source_file.sha256", read_only=True)
    percent = serializers.IntegerField(read_only=True)

    class Meta:
        model = ImportJob
        fields = [
            "id", "file", "file_sha256", "format_requested", "format_detected", "default_model", "default_scaffold",
            "status", "percent",
            "records_seen", "trajectories_imported", "steps_imported", "duplicates", "rejected",
            "unknown_tool_calls", "scrubbed", "errors", "error", "created_at", "started_at", "finished_at",
        ]  # fmt: skip


class ImportUploadSerializer(serializers.Serializer[dict[str, object]]):
    file = serializers.ListField(child=serializers.FileField(), min_length=1, help_text="One or more files.")
    format = serializers.ChoiceField(choices=["", *sorted(IMPORTERS)], required=False, default="")
    model = serializers.CharField(
        required=False, default="", allow_blank=True, max_length=200, help_text="For files naming no model."
    )
    scaffold = serializers.CharField(required=False, default="", allow_blank=True, max_length=100)


class ToolSerializer(serializers.ModelSerializer[Tool]):
    class Meta:
        model = Tool
        fields = ["id", "name", "description", "parameters", "returns", "side_effects", "latency_p99_ms"]


class RegistrySerializer(serializers.ModelSerializer[ToolRegistry]):
    tools = ToolSerializer(many=True, read_only=True)
    is_frozen = serializers.BooleanField(read_only=True)

    class Meta:
        model = ToolRegistry
        fields = ["id", "version", "name", "source_format", "is_frozen", "frozen_at", "sha256", "created_at", "tools"]


class RegistryUploadSerializer(serializers.Serializer[dict[str, object]]):
    file = serializers.FileField()
    format = serializers.ChoiceField(choices=["", *sorted(TOOL_FORMATS)], required=False, default="")
    name = serializers.CharField(required=False, default="", allow_blank=True, max_length=200)
    freeze = serializers.BooleanField(required=False, default=False)


def _trajectory_count(obj: Goal | SweTask) -> int:
    """As the list annotates it; one count query for a single goal or task."""
    annotated = getattr(obj, "trajectory_count", None)
    return annotated if annotated is not None else obj.trajectories.count()


class GoalSerializer(serializers.ModelSerializer[Goal]):
    trajectory_count = serializers.SerializerMethodField()

    class Meta:
        model = Goal
        fields = [
            "id", "external_id", "prompt", "band", "tags", "expected_actions", "expected_outputs",
            "trajectory_count", "created_at",
        ]  # fmt: skip

    def get_trajectory_count(self, goal: Goal) -> int:
        return _trajectory_count(goal)


class GoalWriteSerializer(serializers.Serializer[dict[str, Any]]):
    """The shapes only: the goal service checks the values and says where they are wrong."""

    prompt = serializers.CharField(trim_whitespace=False)
    external_id = serializers.CharField(required=False, default="", allow_blank=True)
    band = serializers.CharField(required=False, default="", allow_blank=True, help_text="atomic, composite, ambiguous")
    tags = serializers.ListField(child=serializers.CharField(allow_blank=True), required=False, default=list)
    expected_actions = serializers.JSONField(
        required=False, default=None, allow_null=True, help_text='[{"name": "cancel_reservation", "arguments": {}}]'
    )
    expected_outputs = serializers.JSONField(
        required=False, default=None, allow_null=True, help_text='A list of strings, e.g. ["327"].'
    )


class GoalFiltersSerializer(serializers.Serializer[dict[str, Any]]):
    band = serializers.ChoiceField(
        choices=["", "none", *Band.values],
        required=False,
        default="",
        help_text='A band, or "none" for goals without one.',
    )
    tag = serializers.CharField(required=False, default="", allow_blank=True, max_length=MAX_TAG_LENGTH)
    search = serializers.CharField(
        required=False, default="", allow_blank=True, max_length=200, help_text="In the prompt or the external id."
    )


class GoalImportSerializer(serializers.Serializer[dict[str, Any]]):
    file = serializers.FileField()
    format = serializers.ChoiceField(choices=["csv", "jsonl", "tau-bench"])
    env = serializers.CharField(
        required=False, default="", allow_blank=True, max_length=40, help_text="τ-bench: the environment (airline)."
    )
    band = serializers.CharField(required=False, default="", allow_blank=True, help_text="τ-bench: every goal's band.")
    tags = serializers.ListField(
        child=serializers.CharField(allow_blank=True), required=False, default=list, help_text="τ-bench: tags for all."
    )


class RowErrorSerializer(serializers.Serializer[Any]):
    where = serializers.CharField(help_text='"line 4", "element 2 (line 9)"')
    line = serializers.IntegerField(allow_null=True)
    field = serializers.CharField(allow_blank=True, help_text='The column or key, with a path ("actions/1/name").')
    column = serializers.IntegerField(allow_null=True, help_text="CSV: the 1-based column.")
    message = serializers.CharField()


class ImportReportSerializer(serializers.Serializer[Any]):
    kind = serializers.CharField()
    created = serializers.IntegerField()
    updated = serializers.IntegerField()
    unchanged = serializers.IntegerField()
    rejected = serializers.IntegerField()
    flagged = serializers.IntegerField(help_text="SWE tasks matching a leak list.")
    errors = serializers.SerializerMethodField()

    def get_errors(self, report: ImportReport) -> list[dict[str, Any]]:
        return [error.as_dict() for error in report.errors]


class SweTaskSerializer(serializers.ModelSerializer[SweTask]):
    trajectory_count = serializers.SerializerMethodField()
    available = serializers.SerializerMethodField(help_text="May go to annotation (no leak match, or overridden).")

    class Meta:
        model = SweTask
        fields = [
            "id", "instance_id", "repo", "base_commit", "version", "image", "reproduction_status", "fail_to_pass",
            "contamination_flags", "contamination_override", "available", "trajectory_count", "created_at",
        ]  # fmt: skip

    def get_available(self, task: SweTask) -> bool:
        return swe_task_available_for_annotation(task)

    def get_trajectory_count(self, task: SweTask) -> int:
        return _trajectory_count(task)


class SweTaskDetailSerializer(SweTaskSerializer):
    class Meta(SweTaskSerializer.Meta):
        fields = [*SweTaskSerializer.Meta.fields, "problem_statement", "gold_patch", "test_patch", "pass_to_pass"]


class SweTaskFiltersSerializer(serializers.Serializer[dict[str, Any]]):
    status = serializers.ChoiceField(
        choices=["", "flagged", "overridden", "available"],
        required=False,
        default="",
        help_text="flagged: matches a leak list, not overridden; overridden: matches one, let through with a reason.",
    )
    repo = serializers.CharField(required=False, default="", allow_blank=True, max_length=300)
    search = serializers.CharField(required=False, default="", allow_blank=True, max_length=200)


class SweTaskImportSerializer(serializers.Serializer[dict[str, Any]]):
    file = serializers.FileField(help_text="SWE-bench instances: a JSON list or JSONL.")


class OverrideSerializer(serializers.Serializer[dict[str, Any]]):
    reason = serializers.CharField(help_text="Why this task may be annotated despite the leak-list match.")
