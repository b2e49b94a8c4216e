from django.contrib import admin

from exports.models import Batch, ExportJob


@admin.register(Batch)
class BatchAdmin(admin.ModelAdmin):
    list_display = ["name", "project", "frozen_at", "created_at"]
    list_filter = ["project"]
    filter_horizontal = ["trajectories"]


@admin.register(ExportJob)
class ExportJobAdmin(admin.ModelAdmin):
    list_display = ["id", "batch", "format", "status", "records_done", "records_total", "created_at"]
    list_filter = ["status", "format"]
