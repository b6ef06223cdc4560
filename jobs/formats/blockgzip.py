"""A gzip file in blocks, each an independent gzip member, so that it can be read from any block.

The results CSV is read a page at a time from the byte offset of every INDEX_STEP-th row
(jobs.formats.resultpages). Compressed as one stream it could only be read from its start; cut
into one member per index step, it is still one valid gzip file (members follow each other, as
RFC 1952 allows, and `gzip` reads them as one), and each index entry becomes the position of the
member that starts there.
"""

import gzip
import io
import shutil
from typing import IO

LEVEL = 6
CHUNK = 1 << 20


def compress_blocks(plain: IO[bytes], out: IO[bytes], offsets: list[int], level: int = LEVEL) -> list[int]:
    """Write `plain` (from its start) to `out` as gzip members cut at `offsets`, plain byte offsets in
    increasing order; returns where each of them starts in `out`."""
    plain.seek(0)
    position = 0
    starts = []
    for end in [*offsets, None]:
        if end is not None and end > position:
            _member(plain, out, end - position, level)
            position = end
        if end is not None:
            starts.append(out.tell())
    _member(plain, out, None, level)
    return starts


def _member(plain: IO[bytes], out: IO[bytes], size: int | None, level: int) -> None:
    with gzip.GzipFile(filename="", fileobj=out, mode="wb", compresslevel=level, mtime=0) as member:
        if size is None:
            shutil.copyfileobj(plain, member, CHUNK)
            return
        while size:
            chunk = plain.read(min(size, CHUNK))
            if not chunk:
                return
            member.write(chunk)
            size -= len(chunk)


class BlockReader(io.RawIOBase):
    """The plain content of a block gzip file, read from the start of any of its members.

    `seek(position)` takes a position compress_blocks returned (or 0) and reads on from there, across
    the members after it. It does not report itself seekable: a position is a member's, not a byte of
    the plain content, so only the caller that holds the index may seek.
    """

    def __init__(self, compressed: IO[bytes]):
        super().__init__()
        self._compressed = compressed
        self._plain: gzip.GzipFile | None = None

    def readable(self) -> bool:
        return True

    def seek(self, position: int, whence: int = io.SEEK_SET) -> int:
        if whence != io.SEEK_SET:
            raise io.UnsupportedOperation("only a member's start can be sought")
        self._compressed.seek(position)
        self._plain = gzip.GzipFile(fileobj=self._compressed, mode="rb")
        return position

    def readinto(self, buffer) -> int:
        if self._plain is None:
            self.seek(0)
        return self._plain.readinto(buffer)
