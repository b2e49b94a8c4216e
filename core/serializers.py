from rest_framework import serializers

from core.models import Project


class ProjectSerializer(serializers.ModelSerializer[Project]):
    role = serializers.SerializerMethodField()

    class Meta:
        model = Project
        fields = [
            "slug", "name", "kind", "description", "overlap", "agreement_target", "calibration_threshold",
            "guideline_version", "rubric_axes", "failure_taxonomy", "created_at", "role",
        ]  # fmt: skip

    def get_role(self, project: Project) -> str | None:
        roles: dict[int, str] = self.context.get("roles", {})
        return roles.get(project.pk)
