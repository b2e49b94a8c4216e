"""How stored bytes are compressed: zstd (level 1) for record payloads and kept uploads.

zstd is chosen over zlib/gzip because the import's reading thread is its critical path:
zstd level 1 compresses these JSON records about twice as fast as zlib level 1, a whole
upload about four times as fast (on two threads), and decompresses twice as fast, with a
similar or better ratio (bench/import_bench.py shows the effect on the whole import).

Records of one file repeat each other: every τ-bench run carries the same policy prompt, every
OpenHands run the same system prompt and tool list. A `PayloadPacker` compresses an import's
first `DICTIONARY_RECORDS` payloads alone and the rest against them, as a zstd raw-content
dictionary (a `PayloadDictionary` row). On the τ-bench corpus a payload then takes 0.3 KB
instead of 4 KB and a third of the time to compress. Such a blob is a zstd skippable frame
that names the dictionary, then the zstd frame:

    magic 0x184D2A5E (u32 LE) · 8 (u32 LE) · the dictionary's id (u64 LE) · zstd frame

A blob without a dictionary is one zstd frame, as before.
"""

from __future__ import annotations

import os
import struct
import threading
from collections.abc import Callable
from typing import IO, NamedTuple

import zstandard

LEVEL = 1
UNPACK_CHUNK = 1 << 20  # what file_unpack writes (and tells) at a time
DICTIONARY_RECORDS = 4  # payloads compressed alone; the dictionary is made of them
DICTIONARY_BYTES = 128 << 10  # at most this much of them (the last bytes): zstd's window at level 1 is larger
_HEAD = struct.Struct("<IIQ")
_MAGIC = 0x184D2A5E  # one of the sixteen skippable-frame magic numbers (RFC 8878, 3.1.2)
_local = threading.local()


def _compressor() -> zstandard.ZstdCompressor:
    compressor = getattr(_local, "compressor", None)
    if compressor is None:  # one per thread: a compressor is not safe to share
        compressor = _local.compressor = zstandard.ZstdCompressor(level=LEVEL)
    return compressor


def pack(raw: bytes) -> bytes:
    """A record's bytes, compressed for the database, alone."""
    return _compressor().compress(raw)


class Packed(NamedTuple):
    blob: bytes
    dictionary_id: int | None  # the dictionary the blob needs, if any
    dictionary: bytes | None  # its bytes, with the first blob that needs it (the caller stores them)


class PayloadPacker:
    """Compresses the payloads of one import process, in order (not safe to share between threads).

    `dictionary_id` is the id its dictionary will be stored under (allocated beforehand: a parse
    worker cannot reach the database); None compresses every payload alone."""

    def __init__(self, dictionary_id: int | None) -> None:
        self._dictionary_id = dictionary_id
        self._samples: list[bytes] = []
        self._compressor: zstandard.ZstdCompressor | None = None
        self._head = b""

    def pack(self, raw: bytes) -> Packed:
        if self._compressor is not None:
            return Packed(self._head + self._compressor.compress(raw), self._dictionary_id, None)
        if self._dictionary_id is None or len(self._samples) < DICTIONARY_RECORDS:
            if self._dictionary_id is not None:
                self._samples.append(raw)
            return Packed(pack(raw), None, None)
        dictionary = b"".join(self._samples)[-DICTIONARY_BYTES:]
        self._samples = []
        self._compressor = zstandard.ZstdCompressor(level=LEVEL, dict_data=_dictionary(dictionary, compress=True))
        self._head = _HEAD.pack(_MAGIC, 8, self._dictionary_id)
        return Packed(self._head + self._compressor.compress(raw), self._dictionary_id, dictionary)

    def pack_beside(self, data: bytes) -> bytes:
        """Bytes derived from the payload just packed (a trajectory's chat messages), compressed against the
        dictionary when there is one already, else alone; they never go into a dictionary."""
        if self._compressor is not None:
            return self._head + self._compressor.compress(data)
        return pack(data)


class Unpacker:
    """Unpacks many blobs, keeping a decompressor for each dictionary they need (`dictionary(id)` gives its
    bytes, asked once an id); not safe to share between threads."""

    def __init__(self, dictionary: Callable[[int], bytes]) -> None:
        self._dictionary = dictionary
        self._plain = zstandard.ZstdDecompressor()
        self._with: dict[int, zstandard.ZstdDecompressor] = {}

    def unpack(self, blob: bytes) -> bytes:
        dictionary_id = dictionary_of(blob)
        if dictionary_id is None:
            return self._plain.decompress(blob)
        decompressor = self._with.get(dictionary_id)
        if decompressor is None:
            decompressor = self._with[dictionary_id] = zstandard.ZstdDecompressor(
                dict_data=_dictionary(self._dictionary(dictionary_id))
            )
        return decompressor.decompress(memoryview(blob)[_HEAD.size :])


def _dictionary(data: bytes, *, compress: bool = False) -> zstandard.ZstdCompressionDict:
    dictionary = zstandard.ZstdCompressionDict(data, dict_type=zstandard.DICT_TYPE_RAWCONTENT)
    if compress:
        dictionary.precompute_compress(level=LEVEL)
    return dictionary


def dictionary_of(blob: bytes | memoryview) -> int | None:
    """The id of the dictionary a payload blob needs, or None."""
    if len(blob) >= _HEAD.size:
        magic, size, dictionary_id = _HEAD.unpack_from(blob)
        if magic == _MAGIC and size == 8:
            return int(dictionary_id)
    return None


def unpack(blob: bytes | memoryview, dictionary: Callable[[int], bytes] | None = None) -> bytes:
    """A payload's original bytes; `dictionary(id)` gives the bytes of a dictionary it needs."""
    blob = bytes(blob)
    dictionary_id = dictionary_of(blob)
    if dictionary_id is None:
        return zstandard.ZstdDecompressor().decompress(blob)
    if dictionary is None:
        raise ValueError(f"this payload is compressed against dictionary {dictionary_id}; none was given")
    return zstandard.ZstdDecompressor(dict_data=_dictionary(dictionary(dictionary_id))).decompress(blob[_HEAD.size :])


def file_writer(out: IO[bytes]) -> zstandard.ZstdCompressionWriter:
    """A writer that compresses into `out` on two threads; close it to finish the frame."""
    return zstandard.ZstdCompressor(level=LEVEL, threads=2, write_checksum=True).stream_writer(out, closefd=False)


def file_unpack(source: IO[bytes], out: IO[bytes], progress: Callable[[int], None] | None = None) -> None:
    """Decompress a kept upload into `out` (a file: imports read from a plain, seekable copy).

    With `progress`, each chunk is written in its place (os.pwrite: the file's offset, which readers of the
    file may be using, is left alone) and then told as progress(bytes written so far)."""
    if progress is None:
        zstandard.ZstdDecompressor().copy_stream(source, out)
        return
    fd, done = out.fileno(), 0
    # Into one buffer, again and again, not into a new 1 MB bytes a chunk (the unpacking thread's CPU on the
    # 239 MB OpenHands corpus: 0.08 s in place of 0.095 s, medians of 6 imports each)
    buffer = bytearray(UNPACK_CHUNK)
    whole = memoryview(buffer)
    with zstandard.ZstdDecompressor().stream_reader(source, closefd=False) as reader:
        while count := reader.readinto(buffer):
            view = whole[:count]
            while view:
                written = os.pwrite(fd, view, done)
                done += written
                view = view[written:]
            progress(done)
