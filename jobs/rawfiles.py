"""Files stored gzip-compressed and read back plain: raw request and provider files, each part's
outcomes, and the results in CSV and JSON Lines.

Request files repeat the same instructions and JSON keys on every line, provider output files
and outcomes the same envelope, and results the upload's text, so they shrink several times
over. Most are read line by line from start to end, which a gzip stream does as well as a plain
file; the results CSV, read a page at a time from its index, is compressed in blocks
(jobs.formats.blockgzip). A file stored before compression (a name not ending in `.gz`) is read
as it is.
"""

import contextlib
import gzip
import shutil
import tempfile
from collections.abc import Iterator
from typing import IO

from django.core.files import File
from django.core.files.storage import default_storage
from django.db.models.fields.files import FieldFile

from jobs.formats import blockgzip

SUFFIX = ".gz"
# zlib's default level: these files shrink almost as much as at 9, several times faster.
LEVEL = 6
CHUNK = 1 << 20


def save(field: FieldFile, name: str, source: IO[bytes]) -> None:
    """Compress `source`, from where it stands, into storage as `field` (the model is not saved)."""
    with compressed(source) as packed:
        field.save(name + SUFFIX, File(packed), save=False)


@contextlib.contextmanager
def compressed(source: IO[bytes]) -> Iterator[IO[bytes]]:
    """`source`, from where it stands, gzip-compressed into a temporary local file (at its start), so
    that the storage gets one upload of known size (S3 included)."""
    with tempfile.TemporaryFile() as packed:
        with gzip.GzipFile(filename="", fileobj=packed, mode="wb", compresslevel=LEVEL, mtime=0) as gz:
            shutil.copyfileobj(source, gz, CHUNK)
        packed.seek(0)
        yield packed


def save_blocks(field: FieldFile, name: str, source: IO[bytes], offsets: list[int]) -> list[int]:
    """Store `source` compressed in blocks cut at its index `offsets` (the model is not saved); returns
    the index into the stored file, for `pages`."""
    with tempfile.TemporaryFile() as packed:
        starts = blockgzip.compress_blocks(source, packed, offsets, LEVEL)
        packed.seek(0)
        field.save(name + SUFFIX, File(packed), save=False)
    return starts


@contextlib.contextmanager
def pages(field: FieldFile) -> Iterator[IO[bytes]]:
    """A stream of the stored file that seeks to the positions of its index (see save_blocks)."""
    with field.open("rb") as stored:
        yield blockgzip.BlockReader(stored) if field.name.endswith(SUFFIX) else stored


def chunks(field: FieldFile) -> Iterator[bytes]:
    """The plain content a block at a time, for a download streamed as it is read."""
    with lines(field) as plain:
        while chunk := plain.read(CHUNK):
            yield chunk


@contextlib.contextmanager
def lines(field: FieldFile) -> Iterator[IO[bytes]]:
    """The stored file's plain content as a binary stream, to iterate by line or read."""
    with field.open("rb") as stored:
        if field.name.endswith(SUFFIX):
            with gzip.GzipFile(fileobj=stored, mode="rb") as plain:
                yield plain
        else:
            yield stored


@contextlib.contextmanager
def plain_copy(field: FieldFile) -> Iterator[IO[bytes]]:
    """The plain content in a temporary local file of its true size: what an HTTP upload needs
    (a gzip stream would report its compressed size)."""
    with tempfile.TemporaryFile() as copy:
        with lines(field) as source:
            shutil.copyfileobj(source, copy, CHUNK)
        copy.seek(0)
        yield copy


def local_paths() -> bool:
    """Whether the file storage is this machine's disk: Run now appends its answers to a file as they
    come (flushed a line at a time, to resume after a crash), which an object store cannot do."""
    try:
        default_storage.path("")
    except NotImplementedError:
        return False
    return True
