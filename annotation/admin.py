from django.contrib import admin

from annotation.models import Assignment, CalibrationRequirement, GoldItem, StepLabel, TrajectoryLabel


@admin.register(Assignment)
class AssignmentAdmin(admin.ModelAdmin):
    list_display = ["id", "trajectory", "annotator", "status", "is_gold", "lease_expires_at", "submitted_at"]
    list_filter = ["status", "is_gold"]
    raw_id_fields = ["trajectory"]


@admin.register(StepLabel)
class StepLabelAdmin(admin.ModelAdmin):
    list_display = ["id", "assignment", "step", "tool_verdict", "process_reward", "env_feedback", "version"]
    raw_id_fields = ["assignment", "step"]


@admin.register(TrajectoryLabel)
class TrajectoryLabelAdmin(admin.ModelAdmin):
    list_display = ["id", "assignment", "goal_completed", "overall_success", "version"]
    raw_id_fields = ["assignment", "first_failing_step"]


@admin.register(GoldItem)
class GoldItemAdmin(admin.ModelAdmin):
    list_display = ["trajectory", "source", "created_by", "created_at"]
    list_filter = ["source"]
    raw_id_fields = ["trajectory"]


@admin.register(CalibrationRequirement)
class CalibrationRequirementAdmin(admin.ModelAdmin):
    list_display = ["annotator", "project", "slice_key", "active", "created_at"]
    list_filter = ["active", "project"]
