"""Keeping trajectories' chat messages (trajectories.chat) where they keep none of this version: trajectories
stored before the import kept them, or kept them in another version. Built from the stored steps."""

from __future__ import annotations

import itertools
from collections.abc import Callable

from django.db import transaction
from django.db.models import BinaryField, IntegerField, Q
from django.db.models.functions import Length, Substr

from core.models import Project
from trajectories.blobs import pack
from trajectories.chat import CHAT_VERSION, StoredStep, chat_body, starts_with_user
from trajectories.models import Step, Trajectory

CHUNK = 500
_FIELDS = StoredStep._fields


def chat_messages_keep(*, project: Project | None = None, on_chunk: Callable[[int], None] | None = None) -> int:
    """Build and store the chat messages of every trajectory (of `project`, or of all) that keeps none of
    this CHAT_VERSION, CHUNK trajectories a transaction; `on_chunk` hears how many each chunk did. Returns
    how many were built."""
    trajectories = Trajectory.objects.all() if project is None else Trajectory.objects.filter(project=project)
    # found by the database from each blob's first bytes: the blobs themselves are not read
    stale = (
        trajectories.annotate(
            version=Substr("chat", 1, 1, output_field=BinaryField()), size=Length("chat", output_field=IntegerField())
        )
        .filter(Q(chat__isnull=True) | Q(size__lt=2) | ~Q(version=bytes((CHAT_VERSION,))))
        .order_by("id")
        .values_list("id", flat=True)
        .iterator(chunk_size=CHUNK * 4)
    )
    built = 0
    for chunk in itertools.batched(stale, CHUNK):
        with transaction.atomic():
            steps: dict[int, list[tuple[int, StoredStep]]] = {pk: [] for pk in chunk}
            for trajectory_id, index, *values in (
                Step.objects.filter(trajectory_id__in=chunk)
                .order_by("trajectory_id", "index")
                .values_list("trajectory_id", "index", *_FIELDS)
            ):
                steps[trajectory_id].append((index, StoredStep(*values)))
            kept = []
            for pk, indexed in steps.items():
                rows = [row for _, row in indexed]
                body = chat_body(rows, [index for index, _ in indexed])
                kept.append(Trajectory(pk=pk, chat=bytes((CHAT_VERSION, starts_with_user(rows))) + pack(body)))
            Trajectory.objects.bulk_update(kept, ["chat"], batch_size=CHUNK)
        built += len(chunk)
        if on_chunk is not None:
            on_chunk(len(chunk))
    return built
