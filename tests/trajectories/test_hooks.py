import pytest

from tests.trajectories.fixtures_util import run_import
from tests.trajectories.test_views import _record
from trajectories.hooks import register_trajectories_imported, unregister_trajectories_imported
from trajectories.models import Trajectory

pytestmark = pytest.mark.smoke


def test_higher_apps_hear_of_new_trajectories_after_commit(project, django_capture_on_commit_callbacks) -> None:
    heard: list[tuple[int, list[int]]] = []

    def hook(project_id: int, ids: list[int]) -> None:
        heard.append((project_id, ids))

    register_trajectories_imported(hook)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            run_import(project, _record("one") + _record("two"))
        assert heard == [(project.pk, sorted(Trajectory.objects.values_list("id", flat=True)))]
        with django_capture_on_commit_callbacks(execute=True):
            run_import(project, _record("one"))  # a duplicate: nothing new to announce
        assert len(heard) == 1
    finally:
        unregister_trajectories_imported(hook)
