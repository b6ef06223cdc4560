"""Raw request and provider files: stored gzip-compressed, read back as plain lines.

Request files repeat the same instructions and JSON keys on every line, and provider output
files the same envelope, so they shrink several times over; they are read line by line from
start to end (never by byte offset), which a gzip stream does as well as a plain file. The
results CSV, which the results pages index by byte offset, stays plain. A file stored before
compression (a name not ending in `.gz`) is read as it is.
"""

import contextlib
import gzip
import shutil
import tempfile
from collections.abc import Iterator
from typing import IO

from django.core.files import File
from django.db.models.fields.files import FieldFile

SUFFIX = ".gz"
# zlib's default level: these files shrink almost as much as at 9, several times faster.
LEVEL = 6
CHUNK = 1 << 20


def save(field: FieldFile, name: str, source: IO[bytes]) -> None:
    """Compress `source`, from where it stands, into storage as `field` (the model is not saved).

    The compressed copy goes through a temporary local file, so the storage gets one plain
    upload of known size (S3 included).
    """
    with tempfile.TemporaryFile() as packed:
        with gzip.GzipFile(filename="", fileobj=packed, mode="wb", compresslevel=LEVEL, mtime=0) as gz:
            shutil.copyfileobj(source, gz, CHUNK)
        packed.seek(0)
        field.save(name + SUFFIX, File(packed), save=False)


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
