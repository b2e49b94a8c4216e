from datetime import datetime
from typing import Any

from rest_framework import serializers

from annotation.models import STEP_LABEL_FIELDS, Assignment, AssignmentStatus, StepLabel, TrajectoryLabel
from annotation.selectors import AssignmentLabels
from trajectories.models import TrajectoryStatus

# A trajectory whose labels are settled: its escalations are decided, nothing is blind any more.
DECIDED = frozenset({TrajectoryStatus.AUDITED, TrajectoryStatus.REJECTED})


class AssignmentSerializer(serializers.ModelSerializer[Assignment]):
    annotator = serializers.CharField(source="annotator.username", read_only=True)
    submitted_at = serializers.SerializerMethodField(
        help_text="Leads see it once the trajectory is audited: the labels are lettered A, B, C in submission order."
    )

    class Meta:
        model = Assignment
        fields = [
            "id", "trajectory_id", "annotator", "status", "is_gold", "lease_expires_at", "skip_reason",
            "time_spent_ms", "created_at", "submitted_at",
        ]  # fmt: skip

    def get_submitted_at(self, assignment: Assignment) -> datetime | None:
        """Withheld from a lead's listing (which carries `trajectory_status`) while the trajectory is undecided:
        with the order of submissions, its escalations' letters A, B, C would name their annotators."""
        status = getattr(assignment, "trajectory_status", None)
        if status is not None and status not in DECIDED:
            return None
        return assignment.submitted_at


class AssignmentFiltersSerializer(serializers.Serializer[dict[str, Any]]):
    status = serializers.ChoiceField(choices=["", *AssignmentStatus.values], required=False, default="")
    annotator = serializers.CharField(
        required=False, default="", allow_blank=True, max_length=150, help_text="A username (QA leads and managers)."
    )
    trajectory = serializers.IntegerField(required=False, default=None, min_value=1, max_value=2**63 - 1)
    gold = serializers.BooleanField(required=False, default=None, allow_null=True, help_text="true or false.")


class StepLabelSerializer(serializers.ModelSerializer[StepLabel]):
    step_index = serializers.IntegerField(read_only=True)

    class Meta:
        model = StepLabel
        fields = ["step_index", *STEP_LABEL_FIELDS, "version", "guideline_version", "updated_at"]


class VerdictSerializer(serializers.ModelSerializer[TrajectoryLabel]):
    first_failing_step_index = serializers.IntegerField(read_only=True, allow_null=True)

    class Meta:
        model = TrajectoryLabel
        fields = [
            "goal_completed", "overall_success", "efficiency", "error_handling", "first_failing_step_index",
            "comment", "version", "guideline_version", "updated_at",
        ]  # fmt: skip


class AssignmentLabelsSerializer(serializers.Serializer[AssignmentLabels]):
    steps = StepLabelSerializer(many=True, read_only=True)
    verdict = VerdictSerializer(read_only=True, allow_null=True)


class MissingSerializer(serializers.Serializer[Any]):
    step_index = serializers.IntegerField(allow_null=True, help_text="None: the trajectory verdict.")
    what = serializers.CharField()
