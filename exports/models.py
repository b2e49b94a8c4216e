from django.conf import settings
from django.db import models

from core.models import Project
from trajectories.models import Trajectory


class Batch(models.Model):
    """A frozen selection of audited trajectories."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="batches")
    name = models.CharField(max_length=200)
    filters = models.JSONField(default=dict, blank=True)
    trajectories = models.ManyToManyField(Trajectory, related_name="batches", blank=True)
    frozen_at = models.DateTimeField(null=True, blank=True)
    summary = models.JSONField(default=dict, blank=True, help_text="Counts and agreement when it was cut.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="batch_unique_name")]

    def __str__(self) -> str:
        return self.name


class ExportStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class ExportJob(models.Model):
    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="export_jobs")
    format = models.CharField(max_length=40)
    options = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=ExportStatus.choices, default=ExportStatus.QUEUED)
    records_total = models.PositiveIntegerField(default=0)
    records_done = models.PositiveIntegerField(default=0)
    files = models.JSONField(default=list, blank=True)
    manifest = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.format} export of {self.batch}"


class Pseudonym(models.Model):
    """The name an account goes by in this project's exports when it is not the derived one
    (exports.services.jobs.pseudonym): an annotator restored from a full export keeps the pseudonym the
    export gave it, so that exporting again names it alike."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=64)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "user"], name="pseudonym_one_per_user"),
            models.UniqueConstraint(fields=["project", "name"], name="pseudonym_unique_name"),
        ]

    def __str__(self) -> str:
        return self.name


class RestoredOrigin(models.Model):
    """Where a run restored from a full export first came from, as that export recorded it (its
    `source`: payload_sha256, importer, importer_version, pointer). Exported in place of the
    restoring import's own provenance, which names only the export file."""

    trajectory = models.OneToOneField(Trajectory, on_delete=models.CASCADE, related_name="restored_origin")
    source = models.JSONField(default=dict)

    def __str__(self) -> str:
        return f"origin of {self.trajectory_id}"
