"""run_limited: untrusted work in a forked child under a wall-clock limit and a memory ceiling."""

from __future__ import annotations

import os
import resource
import time
from pathlib import Path

import pytest

from verification.checks.limits import LimitExceeded, run_limited


def test_returns_the_value_of_a_quick_function() -> None:
    parent = os.getpid()
    value = run_limited(lambda: {"pid": os.getpid(), "squares": [n * n for n in range(5)]}, timeout_s=5)
    assert value["squares"] == [0, 1, 4, 9, 16]
    assert value["pid"] != parent  # it really ran in a child


def test_a_result_larger_than_one_pipe_read_arrives_whole() -> None:
    text = ("abcdefghijklmnopqrstuvwxyz" * (130 * 1024))[: 3 * 1024 * 1024 + 7]  # three reads and a bit
    assert run_limited(lambda: text, timeout_s=10) == text


def test_a_function_that_never_returns_is_stopped_at_the_timeout(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"

    def spin() -> None:
        pid_file.write_text(str(os.getpid()))
        while True:
            pass

    started = time.monotonic()
    with pytest.raises(LimitExceeded, match=r"took longer than 0\.5 s"):
        run_limited(spin, timeout_s=0.5)
    elapsed = time.monotonic() - started
    assert 0.5 <= elapsed < 1.5
    child = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):  # killed and reaped: not even a zombie is left
        os.kill(child, 0)


def test_allocating_beyond_the_memory_budget_is_stopped() -> None:
    with pytest.raises(LimitExceeded, match=r"memory.*64 MB"):
        run_limited(lambda: len(bytearray(512 * 1024 * 1024)), timeout_s=10, memory_mb=64)


def test_the_same_allocation_fits_a_larger_budget() -> None:
    assert run_limited(lambda: len(bytearray(32 * 1024 * 1024)), timeout_s=10, memory_mb=256) == 32 * 1024 * 1024


def test_an_exception_in_the_work_is_reported_with_its_message() -> None:
    def fail() -> None:
        raise ValueError("the seed must be positive")

    with pytest.raises(LimitExceeded, match=r"^ValueError: the seed must be positive$"):
        run_limited(fail, timeout_s=5)


def test_a_child_that_exits_without_answering_died() -> None:
    with pytest.raises(LimitExceeded, match="died"):
        run_limited(lambda: os._exit(3), timeout_s=5)


def test_the_parent_is_unaffected() -> None:
    limits_before = resource.getrlimit(resource.RLIMIT_AS)
    with pytest.raises(LimitExceeded, match="memory"):
        run_limited(lambda: len(bytearray(512 * 1024 * 1024)), timeout_s=10, memory_mb=64)
    with pytest.raises(LimitExceeded, match="took longer"):
        run_limited(lambda: time.sleep(30), timeout_s=0.3, memory_mb=64)
    assert resource.getrlimit(resource.RLIMIT_AS) == limits_before
    assert len(bytearray(128 * 1024 * 1024)) == 128 * 1024 * 1024  # more than the children's 64 MB budget
    assert run_limited(lambda: "still works", timeout_s=5) == "still works"
