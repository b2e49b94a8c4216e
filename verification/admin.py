from django.contrib import admin

from verification.models import CheckRun


@admin.register(CheckRun)
class CheckRunAdmin(admin.ModelAdmin):
    list_display = ["id", "trajectory", "step", "kind", "status", "verifier_version", "duration_ms"]
    list_filter = ["kind", "status"]
    raw_id_fields = ["trajectory", "step"]
