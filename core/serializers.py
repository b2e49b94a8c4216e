from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core.models import Project, ProjectKind


class ProjectSerializer(serializers.ModelSerializer[Project]):
    role = serializers.SerializerMethodField()

    class Meta:
        model = Project
        fields = [
            "slug", "name", "kind", "description", "guidelines", "overlap", "agreement_target",
            "calibration_threshold", "gold_rate", "review_rate", "guideline_version", "rubric_axes",
            "failure_taxonomy", "created_at", "role",
        ]  # fmt: skip

    def get_role(self, project: Project) -> str | None:
        roles: dict[int, str] = self.context.get("roles", {})
        return roles.get(project.pk)


# Described inline: a second component naming ProjectKind's enum would rename the shared ProjectKindEnum.
@extend_schema_field({"type": "string", "enum": ProjectKind.values, "description": "tool_use or coding"})
class ProjectKindField(serializers.ChoiceField):
    def __init__(self) -> None:
        super().__init__(choices=ProjectKind.choices)


class ProjectCreateSerializer(serializers.Serializer[None]):
    name = serializers.CharField(max_length=200)
    kind = ProjectKindField()
    slug = serializers.SlugField(max_length=80, required=False, default="", allow_blank=True)
    description = serializers.CharField(max_length=20_000, required=False, default="", allow_blank=True)


class ProjectUpdateSerializer(serializers.Serializer[None]):
    """The settings to change (any of them); their ranges and the JSON documents' schema are checked by
    core.services.project_update, whose errors answer 400 per field (JSON pointers within the documents)."""

    name = serializers.CharField(max_length=200, required=False)
    description = serializers.CharField(allow_blank=True, trim_whitespace=False, required=False)
    guidelines = serializers.CharField(allow_blank=True, trim_whitespace=False, required=False)
    overlap = serializers.IntegerField(min_value=1, max_value=9, required=False)
    agreement_target = serializers.FloatField(min_value=-1, max_value=1, required=False)
    calibration_threshold = serializers.FloatField(min_value=-1, max_value=1, required=False)
    gold_rate = serializers.FloatField(min_value=0, max_value=1, required=False)
    review_rate = serializers.FloatField(min_value=0, max_value=1, required=False)
    rubric_axes = serializers.JSONField(required=False, help_text="A list of {key, label, anchors}.")
    failure_taxonomy = serializers.JSONField(required=False, help_text="A list of {key, label, severity}.")
