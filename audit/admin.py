from django.contrib import admin

from audit.models import AgreementSnapshot, CalibrationFlag, Consensus, Escalation


@admin.register(Consensus)
class ConsensusAdmin(admin.ModelAdmin):
    list_display = ["trajectory", "step", "field", "method"]
    list_filter = ["method"]
    raw_id_fields = ["trajectory", "step"]


@admin.register(Escalation)
class EscalationAdmin(admin.ModelAdmin):
    list_display = ["id", "trajectory", "field", "reason", "status", "assigned_to", "created_at"]
    list_filter = ["status"]
    raw_id_fields = ["trajectory", "step"]


@admin.register(AgreementSnapshot)
class AgreementSnapshotAdmin(admin.ModelAdmin):
    list_display = ["project", "scope", "slice_key", "coefficient", "value", "n_items", "computed_at"]
    list_filter = ["project", "scope", "coefficient"]


@admin.register(CalibrationFlag)
class CalibrationFlagAdmin(admin.ModelAdmin):
    list_display = ["annotator", "project", "slice_key", "value", "upper_bound", "created_at", "cleared_at"]
