from typing import Any

from rest_framework import serializers

from exports.formats import FORMATS
from exports.models import Batch, ExportJob


class BatchSerializer(serializers.ModelSerializer[Batch]):
    trajectories = serializers.IntegerField(source="summary.trajectories", default=0, read_only=True)

    class Meta:
        model = Batch
        fields = ["id", "name", "filters", "frozen_at", "trajectories", "summary", "created_at"]


class BatchCreateSerializer(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=200)
    filters = serializers.JSONField(
        required=False, default=dict, help_text="See exports.services.batches.FILTER_SCHEMA."
    )


class ExportJobSerializer(serializers.ModelSerializer[ExportJob]):
    class Meta:
        model = ExportJob
        fields = ["id", "format", "options", "status", "records_total", "records_done", "files", "error",
                  "created_at", "finished_at"]  # fmt: skip


class ExportCreateSerializer(serializers.Serializer[Any]):
    format = serializers.ChoiceField(choices=sorted(FORMATS))
    options = serializers.JSONField(
        required=False, default=dict, help_text="apply_corrections, drop_wrong, parquet, licence"
    )
