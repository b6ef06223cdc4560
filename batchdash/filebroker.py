"""The embedded broker: kombu's filesystem transport without its races (celery/kombu#1551).

kombu 5.7's filesystem transport keeps each message in a file and each exchange's bindings in a
JSON file under `control_folder`. Several processes (web, worker, scheduler) share them, and two
of its steps let one process read a file another is still writing:

- a message file is created, then locked, then written; a consumer renames and reads it without
  the lock, so it can read an empty file, and `json.loads("")` raises JSONDecodeError, which the
  worker treats as unrecoverable and exits;
- a new exchange file is opened with "wb" (truncating it, before any lock), so a publisher
  reading the bindings at that moment also reads nothing.

Here every file is written under a temporary name that no reader looks at and then renamed into
place (a rename within one folder is atomic), so a reader sees the whole file or none. Exchange
tables are rewritten under one lock file, so concurrent binds don't lose each other's entries.
Consumed messages are moved to a folder next to the queue (same file system: an atomic rename)
rather than to /tmp. Everything else is kombu's own code.
"""

import fcntl
import os
import uuid
from contextlib import contextmanager
from pathlib import Path
from queue import Empty
from time import monotonic

from kombu.exceptions import ChannelError
from kombu.transport import filesystem, virtual
from kombu.utils.encoding import bytes_to_str, str_to_bytes
from kombu.utils.json import dumps, loads

# A file being written has this prefix: queue readers match "<stamp>_<uuid>.<queue>.msg" only.
WRITING = ".writing-"


def write_atomically(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see either the old file or the complete new one."""
    tmp = path.with_name(f"{WRITING}{uuid.uuid4().hex}")
    with tmp.open("wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


class Channel(filesystem.Channel):
    @contextmanager
    def _tables_locked(self):
        """One writer of exchange tables at a time, across processes."""
        self.control_folder.mkdir(parents=True, exist_ok=True)
        with (self.control_folder / ".lock").open("a") as lock_file:
            fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock_file.fileno(), fcntl.LOCK_UN)

    def get_table(self, exchange):
        try:
            table = loads(bytes_to_str(self._exchange_file(exchange).read_bytes()))
        except FileNotFoundError:
            return []
        return [filesystem.exchange_queue_t(*q) for q in table]

    def _rewrite_table(self, exchange, change) -> None:
        with self._tables_locked():
            queues = self.get_table(exchange)
            changed = change(queues)
            if changed is not None:
                write_atomically(self._exchange_file(exchange), str_to_bytes(dumps(changed)))

    def _queue_bind(self, exchange, routing_key, pattern, queue):
        entry = filesystem.exchange_queue_t(routing_key or "", pattern or "", queue or "")
        self._rewrite_table(exchange, lambda queues: None if entry in queues else [entry, *queues])

    def _delete(self, queue, exchange, routing_key, pattern, *args, **kwargs):
        # The virtual channel's own bookkeeping, without the parent's racy rewrite of the file.
        virtual.Channel._delete(self, queue, exchange, routing_key, pattern, *args, **kwargs)
        entry = filesystem.exchange_queue_t(routing_key or "", pattern or "", queue or "")
        self._rewrite_table(
            exchange, lambda queues: [q for q in queues if q != entry] if entry in queues else None
        )

    def _put(self, queue, payload, **kwargs):
        # A fixed-width stamp, so that sorting the names keeps the order of sending.
        name = f"{int(monotonic() * 1000):015d}_{uuid.uuid4()}.{queue}.msg"
        try:
            write_atomically(Path(self.data_folder_out) / name, str_to_bytes(dumps(payload)))
        except OSError as exc:
            raise ChannelError(f"Cannot add file {name!r} to directory") from exc

    @property
    def processed_folder(self):
        return self.transport_options.get("processed_folder") or str(Path(self.data_folder_in) / "processed")

    def _get(self, queue):
        # Taking a message is a rename into the processed folder (same file system, so atomic: of
        # two consumers one wins); it is deleted there unless store_processed asks to keep it.
        wanted = f"{queue}.msg"
        processed = Path(self.processed_folder)
        processed.mkdir(parents=True, exist_ok=True)
        for filename in sorted(os.listdir(self.data_folder_in)):
            if filename.partition(".")[2] != wanted:
                continue
            taken = processed / filename
            try:
                os.rename(os.path.join(self.data_folder_in, filename), taken)
            except OSError:
                continue  # another consumer took it first
            try:
                payload = taken.read_bytes()
                if not self.transport_options.get("store_processed"):
                    taken.unlink()
            except OSError as exc:
                raise ChannelError(f"Cannot read file {filename!r} from queue.") from exc
            return loads(bytes_to_str(payload))
        raise Empty()


class Transport(filesystem.Transport):
    Channel = Channel
