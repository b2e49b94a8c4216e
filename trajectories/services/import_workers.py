"""Parse workers: the import's parsing in processes of their own, so that it uses every core.

The import is CPU-bound in Python; threads of one process take turns on the GIL. A PostgreSQL
import therefore forks worker processes, each of which parses and prepares every N-th record
(imports._prepare_one, exactly as the serial path does) and renders the run's rows as COPY text
(BatchWriter.render), so the importing process has almost nothing left to do per step.

    feeder thread (this process)  reads the file's records, hands them in groups to the next worker in turn
    worker i (a forked process)   parse + prepare + render, the group's results back on its own pipe
    results() (this process)      takes the results in the records' order, round-robin

A record is handed over as its bytes, or, from a plain file, as its span (reading.scan_jsonl,
reading.scan_json_array): the worker reads those bytes itself (os.pread on the inherited file
descriptor), so this process only finds where records are. Array spans are parsed by the
worker as iter_json_array would parse them; when the scanner or a worker cannot vouch for an
element (the file is malformed there), the workers stop and iter_json_array reads the file
from that element on, in this process, and locates the fault exactly as the serial import does.

Results come back in the file's order (worker i has groups i, i+N, …, and answers in order).
Memory stays bounded: each pipe holds at most a pipe buffer of records or results, and a worker
holds one group of records and results at a time (GROUP_RECORDS, GROUP_BYTES).

Workers are plain `os.fork` children, not multiprocessing ones: the import also runs inside
Celery's prefork pool, whose processes multiprocessing refuses to start children from. A worker
never touches the database (it shares the connection's socket with this process): it ends with
`os._exit`, which runs no cleanup that could close the shared connection. It stops when its
inbox ends (this process closed it or died) or its outbox breaks.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import json
import logging
import os
import pickle
import queue
import signal
import struct
import threading
import traceback
from collections.abc import Callable, Iterator
from typing import IO, Any

from trajectories.formats import RawRecord, RecordError
from trajectories.formats.reading import RecordSpan, SerialFrom, element_from_span, record_from_span
from trajectories.services.storage import BatchWriter, Prepared, PreparedRun, RowTransformers

logger = logging.getLogger(__name__)

_LENGTH = struct.Struct("<Q")
_PIPE_BYTES = 1 << 20  # pipe buffers as large as Linux allows without privileges (the default is 64 KB)
_CRASH = "crash"  # a worker's last message when something outside any one record failed
_SERIAL = "serial"  # a worker's answer for an array span that is not one valid JSON value
_RAW, _LINE, _ELEMENT = 0, 1, 2  # what a worker is handed: a record's bytes, or a span of the file
# Records go to a worker in groups of up to this many, or this many bytes, and their results come back
# together: one message, one pipe write and one queue entry for each group instead of each record
# (τ-bench runs are 12 KB each).
GROUP_RECORDS = 16
GROUP_BYTES = 256 << 10


# The garbage collector's thresholds while an import runs, in its workers and in the importing process.
SELDOM_COLLECTIONS = (100_000, 50, 50)


class WorkerCrashed(RuntimeError):
    """A parse worker failed outside any one record (its traceback is the message), or died."""


def _send(out: IO[bytes], message: Any) -> None:
    """A message as its pickle's length, its out-of-band buffers' count and lengths, the pickle, then the
    buffers (a RenderedRun's rows: written as they are, never copied into the pickle)."""
    buffers: list[pickle.PickleBuffer] = []
    data = pickle.dumps(message, protocol=5, buffer_callback=buffers.append)
    views = [buffer.raw() for buffer in buffers]
    out.write(_LENGTH.pack(len(data)) + _LENGTH.pack(len(views)) + b"".join(_LENGTH.pack(v.nbytes) for v in views))
    out.write(data)
    for view in views:
        out.write(view)


def _receive(inbox: IO[bytes]) -> Any:
    """The next message, or EOF (an `_EOF` marker) when the other end closed."""
    head = inbox.read(2 * _LENGTH.size)
    if len(head) < 2 * _LENGTH.size:
        return _EOF
    size, count = struct.unpack("<QQ", head)
    lengths = inbox.read(count * _LENGTH.size)
    if len(lengths) < count * _LENGTH.size:
        return _EOF
    data = inbox.read(size)
    sizes = struct.unpack(f"<{count}Q", lengths)
    buffers = [inbox.read(length) for length in sizes]
    if len(data) < size or any(len(b) < length for b, length in zip(buffers, sizes, strict=True)):
        return _EOF
    return pickle.loads(data, buffers=buffers)  # noqa: S301 - our own forked worker wrote it


_EOF = object()


def _pipe() -> tuple[int, int]:
    read, write = os.pipe()
    # A smaller limit (/proc/sys/fs/pipe-max-size) leaves the default size, which works too.
    with contextlib.suppress(OSError):
        fcntl.fcntl(write, fcntl.F_SETPIPE_SZ, _PIPE_BYTES)
    return read, write


class ParseWorkers:
    """`count` forked workers for one import; use as a context manager around `results()`."""

    def __init__(
        self,
        *,
        count: int,
        prepare_one: Callable[[int], Callable[[RawRecord], PreparedRun | RecordError]],
        writer: BatchWriter,
        source_fd: int | None = None,
        source_name: str = "",
        serial_from: Callable[[int], Iterator[RawRecord | RecordError]] | None = None,
    ) -> None:
        """`prepare_one(i)` is what worker i prepares its records with (i = `count`: this process, when it
        reads on serially); each has its own, as each compresses against a dictionary of its own.
        `source_fd` is the plain file that spans point into; `serial_from(n)` reads its records
        from the n-th on as the serial import would (for a SerialFrom, see reading.scan_json_array)."""
        self._count = count
        self._prepare_one = prepare_one
        self._writer = writer
        self._source_fd = source_fd
        self._source_name = source_name
        self._serial_from = serial_from
        self._pids: list[int] = []
        self._inboxes: list[IO[bytes]] = []  # this process writes records to them
        self._outboxes: list[IO[bytes]] = []  # this process reads results from them
        # Which worker answers each record next, in the file's order. Unbounded, and C's own queue (a bounded
        # queue.Queue cost the feeder a lock dance a record): each entry stands for a message in a pipe, so the
        # pipes bound it.
        self._plan: queue.SimpleQueue[tuple[int, Any]] = queue.SimpleQueue()
        self._feeder: threading.Thread | None = None
        self._stop = threading.Event()

    # ------------------------------------------------------------------ this process

    def __enter__(self) -> ParseWorkers:
        # The dumpers the writer's COPY uses, looked up here once: a worker renders with the same ones.
        tx = self._writer.row_transformers()
        try:
            for number in range(self._count):
                self._fork(tx, number)
        except BaseException:
            self._shutdown()
            raise
        return self

    def _fork(self, tx: RowTransformers, number: int) -> None:
        to_worker_r, to_worker_w = _pipe()
        from_worker_r, from_worker_w = _pipe()
        pid = os.fork()
        if pid == 0:  # the worker
            code = 1
            try:
                os.close(to_worker_w)
                os.close(from_worker_r)
                for other in (*self._inboxes, *self._outboxes):  # earlier workers' pipe ends
                    os.close(other.fileno())
                prepare_one = self._prepare_one(number)
                code = self._work(os.fdopen(to_worker_r, "rb"), os.fdopen(from_worker_w, "wb"), tx, prepare_one)
            finally:
                os._exit(code)
        os.close(to_worker_r)
        os.close(from_worker_w)
        self._pids.append(pid)
        self._inboxes.append(os.fdopen(to_worker_w, "wb"))
        self._outboxes.append(os.fdopen(from_worker_r, "rb"))

    def results(
        self, records: Iterator[RawRecord | RecordError | RecordSpan | SerialFrom], position: Callable[[], int]
    ) -> Iterator[tuple[int, Prepared | RecordError]]:
        """(bytes read so far, the prepared run or the located error) for each record, in order."""
        self._feeder = threading.Thread(target=self._feed, args=(records, position), name="import-feeder", daemon=True)
        self._feeder.start()
        done = 0
        while True:
            worker, item = self._plan.get()
            if worker == -1:  # the end of the records: `item` is None, or what the reader raised
                if item is not None:
                    raise item
                return
            if worker == -2:  # a reader's error: no worker involved
                yield item
                continue
            if worker == -3:  # the scanner's SerialFrom: `item` is (bytes read, the record's number)
                yield from self._serially(*item)
                return
            answers = _receive(self._outboxes[worker])
            if answers is _EOF:
                raise WorkerCrashed(f"parse worker {self._pids[worker]} ended unexpectedly")
            if isinstance(answers, tuple) and answers[:1] == (_CRASH,):
                raise WorkerCrashed(answers[1])
            for read, result in zip(item, answers, strict=False):  # a _SERIAL answer ends a group early
                if isinstance(result, tuple) and result[:1] == (_SERIAL,):
                    yield from self._serially(done, result[1])
                    return
                done = read
                yield read, result

    def _serially(self, position: int, count: int) -> Iterator[tuple[int, Prepared | RecordError]]:
        """The records from the `count`-th on, read and prepared here, as the serial import does."""
        self.stop()  # what the workers have of the rest is not wanted
        if self._serial_from is None:
            raise WorkerCrashed("a span could not be read, and there is no serial reader to fall back on")
        prepare_one = self._prepare_one(self._count)
        for record in self._serial_from(count):
            yield position, record if isinstance(record, RecordError) else prepare_one(record)

    def _feed(
        self, records: Iterator[RawRecord | RecordError | RecordSpan | SerialFrom], position: Callable[[], int]
    ) -> None:
        turn = 0
        error: BaseException | None = None
        group: list[tuple[Any, ...]] = []  # the messages for the next worker in turn, and where each ends
        reads: list[int] = []
        group_bytes = 0

        def send_group() -> None:
            nonlocal turn, group, reads, group_bytes
            if not group:
                return
            try:
                _send(self._inboxes[turn], group)
                self._inboxes[turn].flush()
            except BrokenPipeError:
                raise WorkerCrashed(f"parse worker {self._pids[turn]} ended unexpectedly") from None
            self._plan.put((turn, reads))
            turn = (turn + 1) % self._count
            group, reads, group_bytes = [], [], 0

        try:
            for record in records:
                if self._stop.is_set():
                    return
                if isinstance(record, RecordError):
                    send_group()  # the records before it first: results come in the file's order
                    self._plan.put((-2, (position(), record)))
                    continue
                if isinstance(record, SerialFrom):
                    send_group()
                    self._plan.put((-3, (position(), record.count)))
                    break
                message: tuple[Any, ...]
                if isinstance(record, RecordSpan):
                    kind = _ELEMENT if record.element else _LINE
                    message = (kind, record.start, record.end, record.line, record.index)
                    read = record.end
                    group_bytes += record.end - record.start
                else:
                    message = (
                        _RAW,
                        record.raw,
                        record.where,
                        record.line,
                        record.index,
                        record.source_name,
                        record.value is not None,  # read from a JSON array: the worker parses it alike
                    )
                    read = position()
                    group_bytes += len(record.raw)
                group.append(message)
                reads.append(read)
                if len(group) >= GROUP_RECORDS or group_bytes >= GROUP_BYTES:
                    send_group()
            send_group()
        except BaseException as exc:  # raised by results(), in its turn
            error = exc
        finally:
            close = getattr(records, "close", None)
            if close is not None:
                close()
            for inbox in self._inboxes:  # the workers finish what they have and stop
                with contextlib.suppress(OSError):
                    inbox.close()
        if not self._stop.is_set():
            self._plan.put((-1, error))

    def __exit__(self, *exc_info: object) -> None:
        self._shutdown()

    def stop(self) -> None:
        """Stop the workers now (the import is leaving early): a wait on their results ends."""
        self._stop.set()
        for pid in self._pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def _shutdown(self) -> None:
        self._stop.set()
        if self._feeder is not None and self._feeder.is_alive():
            self.stop()  # so that a feeder blocked on a full pipe wakes
            self._feeder.join()
        for outbox in self._outboxes:
            outbox.close()
        for inbox in self._inboxes:
            with contextlib.suppress(OSError):
                inbox.close()
        for pid in self._pids:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        self._pids = []

    # ------------------------------------------------------------------ the worker process

    def _work(
        self,
        inbox: IO[bytes],
        outbox: IO[bytes],
        tx: RowTransformers,
        prepare_one: Callable[[RawRecord], PreparedRun | RecordError],
    ) -> int:
        gc.freeze()  # what it inherited is never collected here: leave those pages shared
        # A record's objects go by reference counting once it is answered; a collection only ever finds the
        # rare cycle (an exception's traceback), so let collections come seldom: 6 % of a worker's time on
        # OpenHands runs (thousands of small containers a record) went to them.
        gc.set_threshold(*SELDOM_COLLECTIONS)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the importing process decides when to stop
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not a Celery pool's handlers
        try:
            while (group := _receive(inbox)) is not _EOF:
                answers: list[Any] = []
                for message in group:
                    record = self._record(message)
                    if not isinstance(record, RawRecord):  # a located error, or (_SERIAL, index)
                        answers.append(record)
                        if isinstance(record, tuple):
                            break  # the rest of the file is read serially
                        continue
                    result = prepare_one(record)
                    if isinstance(result, PreparedRun):
                        try:
                            rendered: Any = self._writer.render(result, tx)
                        except Exception:  # the writer meets it as the serial import would: hand it over whole
                            rendered = result
                        result = rendered
                    answers.append(result)
                _send(outbox, answers)
                outbox.flush()
        except BrokenPipeError:
            return 0  # the importing process stopped reading
        except BaseException:
            try:
                _send(outbox, (_CRASH, traceback.format_exc()))
                outbox.flush()
            except OSError:
                pass
            return 1
        return 0

    def _record(self, message: tuple[Any, ...]) -> RawRecord | RecordError | tuple[str, int]:
        """The record a message stands for, read from the file where it is a span."""
        if message[0] == _RAW:
            _, raw, where, line, index, source_name, parsed = message
            record = RawRecord(raw=raw, where=where, line=line, index=index, source_name=source_name)
            if parsed:
                record.value = _json_value(raw)
            return record
        kind, start, end, line, index = message
        assert self._source_fd is not None
        span = RecordSpan(start, end, line, index, element=kind == _ELEMENT)
        raw = os.pread(self._source_fd, end - start, start)
        read = element_from_span(raw, span) if span.element else record_from_span(raw, span)
        if read is None:
            return (_SERIAL, index)
        if isinstance(read, RawRecord):
            read.source_name = self._source_name
        return read


def _json_value(raw: bytes) -> Any:
    """The value the array reader parsed (json's scanner, so exactly the same value)."""
    return json.loads(raw.decode("utf-8"))
