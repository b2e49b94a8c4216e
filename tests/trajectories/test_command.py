import pytest
from django.core.management import call_command

from tests.trajectories.test_views import _record
from trajectories.models import ImportJob, Trajectory

pytestmark = pytest.mark.smoke


def test_cli_imports_and_exits_non_zero_on_rejected_records(project, pm, tmp_path, capsys) -> None:
    good = tmp_path / "good.jsonl"
    good.write_bytes(_record("one") + _record("two"))
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_bytes(_record("three") + b"{oops\n")
    with pytest.raises(SystemExit) as exc:
        call_command("import_trajectories", project.slug, str(good), str(mixed), "--as", "pm")
    assert exc.value.code == 1
    out, err = capsys.readouterr()
    assert "good.jsonl: openai_chat: 2 trajectories (4 steps) imported, 0 already present, 0 rejected" in out
    assert "mixed.jsonl: line 2: malformed JSON" in err
    assert Trajectory.objects.filter(project=project).count() == 3
    assert ImportJob.objects.filter(created_by=pm).count() == 2

    call_command("import_trajectories", project.slug, str(mixed), "--allow-rejected")  # no SystemExit
    out, _ = capsys.readouterr()
    assert "0 trajectories (0 steps) imported, 1 already present, 1 rejected" in out


def test_cli_fails_clearly_on_what_cannot_be_imported(project, tmp_path, capsys) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    with pytest.raises(SystemExit) as exc:
        call_command("import_trajectories", project.slug, str(empty), str(tmp_path / "missing.jsonl"))
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "empty.jsonl: not imported: empty.jsonl: line 1: the file is empty" in err
    assert "missing.jsonl: no such file" in err
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="no project with slug 'nope'"):
        call_command("import_trajectories", "nope", str(empty))
