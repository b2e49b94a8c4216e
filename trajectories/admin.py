from django.contrib import admin

from trajectories.models import Goal, ImportJob, LeakList, SourceFile, Step, SweTask, Tool, ToolRegistry, Trajectory


class ToolInline(admin.TabularInline):
    model = Tool
    extra = 0
    fields = ["name", "side_effects", "latency_p99_ms", "description"]


@admin.register(ToolRegistry)
class ToolRegistryAdmin(admin.ModelAdmin):
    list_display = ["project", "version", "name", "frozen_at", "sha256"]
    list_filter = ["project"]
    readonly_fields = ["frozen_at", "sha256"]
    inlines = [ToolInline]


@admin.register(Goal)
class GoalAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "external_id", "band", "created_at"]
    list_filter = ["project", "band"]
    search_fields = ["external_id", "prompt"]


@admin.register(SweTask)
class SweTaskAdmin(admin.ModelAdmin):
    list_display = ["instance_id", "project", "repo", "reproduction_status"]
    list_filter = ["project", "reproduction_status"]
    search_fields = ["instance_id", "repo"]


@admin.register(SourceFile)
class SourceFileAdmin(admin.ModelAdmin):
    list_display = ["name", "project", "size", "sha256", "created_at"]
    list_filter = ["project"]
    readonly_fields = ["sha256", "size", "stored"]


@admin.register(ImportJob)
class ImportJobAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "project",
        "source_file",
        "format_detected",
        "status",
        "trajectories_imported",
        "rejected",
        "created_at",
    ]
    list_filter = ["project", "status"]
    readonly_fields = [f.name for f in ImportJob._meta.fields]


class StepInline(admin.TabularInline):
    model = Step
    extra = 0
    fields = ["index", "kind", "tool_name", "tool_known", "success_flag"]
    readonly_fields = ["index", "kind", "tool_name", "tool_known", "success_flag"]
    show_change_link = True


@admin.register(Trajectory)
class TrajectoryAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "model_name", "scaffold", "trial", "status", "step_count", "outcome_reward"]
    list_filter = ["project", "status", "source_format", "model_name"]
    search_fields = ["rollout_id", "content_sha256", "goal_text"]
    readonly_fields = ["content_sha256", "payload_sha256", "source_file", "source_pointer", "importer_version"]
    exclude = ["payload"]
    raw_id_fields = ["goal", "swe_task"]
    inlines = [StepInline]


@admin.register(Step)
class StepAdmin(admin.ModelAdmin):
    list_display = ["id", "trajectory", "index", "kind", "tool_name", "tool_known", "success_flag"]
    list_filter = ["kind", "tool_known", "success_flag"]
    raw_id_fields = ["trajectory", "tool"]


@admin.register(LeakList)
class LeakListAdmin(admin.ModelAdmin):
    list_display = ["name", "project", "uploaded_by", "created_at"]
    list_filter = ["project"]
