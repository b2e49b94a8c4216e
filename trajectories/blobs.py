"""How stored bytes are compressed: zstd (level 1) for record payloads and kept uploads.

zstd is chosen over zlib/gzip because the import's reading thread is its critical path:
zstd level 1 compresses these JSON records about twice as fast as zlib level 1, a whole
upload about four times as fast (on two threads), and decompresses twice as fast, with a
similar or better ratio (bench/import_bench.py shows the effect on the whole import).
"""

from __future__ import annotations

import threading
from typing import IO

import zstandard

LEVEL = 1
_local = threading.local()


def _compressor() -> zstandard.ZstdCompressor:
    compressor = getattr(_local, "compressor", None)
    if compressor is None:  # one per thread: a compressor is not safe to share
        compressor = _local.compressor = zstandard.ZstdCompressor(level=LEVEL)
    return compressor


def pack(raw: bytes) -> bytes:
    """A record's bytes, compressed for the database."""
    return _compressor().compress(raw)


def unpack(blob: bytes) -> bytes:
    return zstandard.ZstdDecompressor().decompress(bytes(blob))


def file_writer(out: IO[bytes]) -> zstandard.ZstdCompressionWriter:
    """A writer that compresses into `out` on two threads; close it to finish the frame."""
    return zstandard.ZstdCompressor(level=LEVEL, threads=2, write_checksum=True).stream_writer(out, closefd=False)


def file_unpack(source: IO[bytes], out: IO[bytes]) -> None:
    """Decompress a kept upload into `out` (a file: imports read from a plain, seekable copy)."""
    zstandard.ZstdDecompressor().copy_stream(source, out)
