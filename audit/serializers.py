from typing import Any

from rest_framework import serializers

from annotation.serializers import StepLabelSerializer, VerdictSerializer
from audit.models import AgreementSnapshot, Escalation


class EscalationSerializer(serializers.ModelSerializer[Escalation]):
    project = serializers.CharField(source="project.slug", read_only=True)
    step_index = serializers.IntegerField(source="step.index", default=None, read_only=True)
    assigned_to = serializers.CharField(source="assigned_to.username", default=None, read_only=True)

    class Meta:
        model = Escalation
        fields = [
            "id", "project", "trajectory_id", "step_index", "field", "source", "reason", "tool_name", "status",
            "assigned_to", "decision", "decision_source", "decision_kind", "decision_reason", "created_at",
            "resolved_at",
        ]  # fmt: skip


class VoteSerializer(serializers.Serializer[Any]):
    letter = serializers.CharField()
    value = serializers.JSONField(allow_null=True)
    annotator = serializers.CharField(allow_blank=True, help_text="Shown only once the decision is recorded.")


class EscalationDetailSerializer(EscalationSerializer):
    votes = serializers.SerializerMethodField()

    class Meta(EscalationSerializer.Meta):
        fields = [*EscalationSerializer.Meta.fields, "votes"]

    def get_votes(self, obj: Escalation) -> list[dict[str, Any]]:
        columns = self.context["columns"]
        return [{"letter": c.letter, "value": c.value, "annotator": c.annotator} for c in columns]


class ResolveSerializer(serializers.Serializer[Any]):
    choice = serializers.CharField(help_text='A letter of the labels shown, or "own".')
    value = serializers.JSONField(required=False, allow_null=True, help_text='The value, with choice "own".')
    kind = serializers.ChoiceField(choices=["annotator_error", "ambiguous"])
    reason = serializers.CharField()


class AgreementSnapshotSerializer(serializers.ModelSerializer[AgreementSnapshot]):
    annotator = serializers.CharField(source="annotator.username", default=None, read_only=True)
    other = serializers.CharField(source="other.username", default=None, read_only=True)

    class Meta:
        model = AgreementSnapshot
        fields = [
            "scope", "slice_key", "measure", "annotator", "other", "coefficient", "value", "reason", "n_items",
            "raw_agreement", "ac1", "ci_low", "ci_high", "computed_at",
        ]  # fmt: skip


class BlindStepLabelSerializer(StepLabelSerializer):
    """No save times beside the letters: their order would tell whose labels are whose."""

    class Meta(StepLabelSerializer.Meta):
        fields = [f for f in StepLabelSerializer.Meta.fields if f != "updated_at"]


class BlindVerdictSerializer(VerdictSerializer):
    class Meta(VerdictSerializer.Meta):
        fields = [f for f in VerdictSerializer.Meta.fields if f != "updated_at"]


class LetteredLabelsSerializer(serializers.Serializer[Any]):
    letter = serializers.CharField(help_text="A, B, C … as the trajectory's escalations letter them.")
    annotator = serializers.CharField(
        allow_blank=True, help_text="Shown only once the trajectory is audited and no escalation of it is open."
    )
    steps = BlindStepLabelSerializer(source="labels.steps", many=True, read_only=True)
    verdict = BlindVerdictSerializer(source="labels.verdict", read_only=True, allow_null=True)


class TrajectoryLabelsSerializer(serializers.Serializer[Any]):
    trajectory_id = serializers.IntegerField(source="trajectory.pk")
    status = serializers.CharField(source="trajectory.status")
    names_shown = serializers.BooleanField()
    labels = LetteredLabelsSerializer(source="columns", many=True)
