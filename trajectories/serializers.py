from rest_framework import serializers

from trajectories.formats import IMPORTERS
from trajectories.formats.tools import TOOL_FORMATS
from trajectories.models import ImportJob, Step, Tool, ToolRegistry, Trajectory


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
