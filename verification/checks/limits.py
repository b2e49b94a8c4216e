"""Run untrusted environment code with a hard wall-clock limit and a memory ceiling.

The work runs in a forked child (works inside Celery's prefork and solo pools alike, where
multiprocessing refuses daemonic children); the child sets RLIMIT_AS to what it already maps
plus the budget, and sends its JSON result back through a pipe. The parent kills it when the
time is up. The child never touches the database: it gets plain data and returns plain data.
"""

from __future__ import annotations

import os
import resource
import select
import signal
import time
from collections.abc import Callable
from typing import Any

import orjson

DEFAULT_TIMEOUT_S = 60.0
DEFAULT_MEMORY_MB = 512


class LimitExceeded(Exception):
    """The work ran out of time or memory, or died."""


def _mapped_bytes() -> int:
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def run_limited(
    work: Callable[[], Any], *, timeout_s: float = DEFAULT_TIMEOUT_S, memory_mb: int = DEFAULT_MEMORY_MB
) -> Any:
    """`work()`'s JSON-serialisable result, computed in a child under the limits; LimitExceeded otherwise."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        status = 0
        try:
            os.close(read_fd)
            ceiling = _mapped_bytes() + memory_mb * 1024 * 1024
            resource.setrlimit(resource.RLIMIT_AS, (ceiling, ceiling))
            try:
                payload = orjson.dumps({"ok": work()}, option=orjson.OPT_NON_STR_KEYS)
            except MemoryError:
                payload = orjson.dumps({"error": f"ran out of memory (limit {memory_mb} MB)"})
            except BaseException as exc:  # the parent reports it; the child must not unwind into the caller
                payload = orjson.dumps({"error": f"{type(exc).__name__}: {exc}"[:2000]})
            view = memoryview(payload)
            while view:
                written = os.write(write_fd, view)
                view = view[written:]
        except BaseException:
            status = 1
        finally:
            os._exit(status)
    os.close(write_fd)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                os.kill(pid, signal.SIGKILL)
                raise LimitExceeded(f"took longer than {timeout_s:g} s")
            ready, _, _ = select.select([read_fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(read_fd, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(read_fd)
        os.waitpid(pid, 0)
    if not chunks:
        raise LimitExceeded("the sandboxed work died without an answer")
    try:
        answer = orjson.loads(b"".join(chunks))
    except orjson.JSONDecodeError:
        raise LimitExceeded("the sandboxed work died in the middle of its answer") from None
    if "error" in answer:
        raise LimitExceeded(answer["error"])
    return answer["ok"]
