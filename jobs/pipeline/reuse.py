"""Never pay twice: identical requests are answered once.

Every request has a fingerprint (requestfiles.fingerprint: endpoint and body, keys sorted) and a
cheaper key of its texts (RequestBuilder.text_keys: their CRC-32 and length). While a job is
prepared, rows whose fingerprint already has a succeeded answer in the key's scope take it and are
not sent (only the rows whose text key the index holds are fingerprinted), and rows repeating an
earlier row of the same job are sent once, the answer given to each. The index (ReusableAnswer) is
filled when a job's results are built, from its request files and outcomes, and emptied when the
job is deleted or its raw files pass their retention.
"""

import contextlib
import functools
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import IO, Any, NamedTuple

import orjson
from django.core.files import File
from django.db import connections, transaction
from django.db.models import Aggregate, Q, TextField

from jobs import rawfiles
from jobs.formats import reconcile
from jobs.formats.exports import latest_outcomes
from jobs.formats.reconcile import REUSED
from jobs.formats.requestfiles import EMBEDDINGS, RequestBuilder, fingerprint
from jobs.formats.requestreads import line_row
from jobs.models import Job, ProviderCredential, ReusableAnswer
from jobs.money import pricing
from jobs.pipeline.common import request_spec

# Index entries written per query.
CHUNK = 2000


class Earlier(NamedTuple):
    """An earlier answer to a request, and where it came from."""

    job_name: str
    row: int
    answer: str
    input_tokens: int
    output_tokens: int


def allowed(job: Job) -> bool:
    """Whether the job's requests may be answered once: the key's scope is not off, and the answers
    are meant to be the same (temperature 0, embeddings) or the owner asked for it.
    """
    if job.credential.reuse_scope == ProviderCredential.ReuseScope.OFF:
        return False
    return job.endpoint == EMBEDDINGS or job.temperature == 0 or job.reuse_answers


def _jobs_in_scope(job: Job):
    """The jobs whose answers this job may take: on a key of the same provider, and within the key's
    scope (team: the jobs its owner can see, their own and those shared with one of their teams; or
    the whole organisation).
    """
    credential = job.credential
    jobs = Job.objects.filter(credential__kind=credential.kind, credential__base_url=credential.base_url)
    if credential.reuse_scope == ProviderCredential.ReuseScope.TEAM:
        jobs = jobs.filter(Q(owner_id=job.owner_id) | Q(team__in=job.owner.groups.all()))
    return jobs


class Answered:
    """What prepare records for the rows it does not send: the reused ones as succeeded outcomes
    carrying the earlier answer (the job's reused_file), and the repeats as [row, first row] lines
    (its copies_file). The callbacks write_batch_files takes.
    """

    def __init__(self, job: Job, spec: str, reused: IO[bytes], copies: IO[bytes]):
        self.job = job
        self._reused, self._copies = reused, copies
        self.sources: Counter = Counter()
        self.input_tokens = self.output_tokens = 0
        job.rows_reused = job.rows_copied = 0
        self.lookup: Callable[[list[str]], dict[str, Earlier]] | None = None
        self.known: Callable[[], set[int]] | None = None
        self.same_as = self._same_as if allowed(job) else None
        if self.same_as and not job.send_again:
            # The text keys in scope of requests made with these settings, when there are any: rows are
            # tested against them in memory, and only those whose key is known are fingerprinted and
            # read from the database. They load in a thread of their own (the database works without
            # holding the interpreter) while the table's first rows are read and the pool starts;
            # here within a transaction, whose rows another connection would not see.
            jobs = _jobs_in_scope(job).filter(request_settings=spec).values("pk")
            entries = ReusableAnswer.objects.filter(job__in=jobs)
            if entries.exists():
                if transaction.get_connection().in_atomic_block:
                    self.known = functools.partial(_text_keys, entries)
                else:
                    self.known = _LOADER.submit(_text_keys_apart, entries).result
                self.lookup = self._lookup

    def _lookup(self, prints: list[str]) -> dict[str, Earlier]:
        fields = ("fingerprint", "job_id", "row", "answer", "input_tokens", "output_tokens")
        found = list(
            ReusableAnswer.objects.filter(fingerprint__in=prints).order_by("job_id").values_list(*fields)
        )
        if not found:
            return {}
        names = dict(_jobs_in_scope(self.job).filter(pk__in={f[1] for f in found}).values_list("pk", "name"))
        # The latest job's answer when there are several.
        return {mark: Earlier(names[job], *rest) for mark, job, *rest in found if job in names}

    def answered(self, row: int, earlier: Earlier) -> None:
        message = f"Answered before in “{earlier.job_name}” (row {earlier.row}); not sent again."
        outcome = reconcile.Outcome(
            row,
            True,
            answer=earlier.answer,
            code=REUSED,
            message=message,
            input_tokens=earlier.input_tokens,
            output_tokens=earlier.output_tokens,
        )
        self._reused.write(outcome.to_json() + b"\n")
        self.job.rows_reused += 1
        self.sources[earlier.job_name] += 1
        self.input_tokens += earlier.input_tokens
        self.output_tokens += earlier.output_tokens

    def _same_as(self, row: int, first: int) -> None:
        self._copies.write(orjson.dumps([row, first]) + b"\n")
        self.job.rows_copied += 1

    def save(self) -> None:
        """Store the files on the job (unsaved) with the saving and the jobs the answers came from."""
        job = self.job
        if job.rows_reused:
            self._reused.seek(0)
            job.reused_file.save(f"{job.code}-reused.jsonl", File(self._reused), save=False)
            cost = pricing.cost(pricing.prices().get(job.model), self.input_tokens, self.output_tokens)
            job.reuse_saving = cost.batch if cost else 0
            job.reused_from = [[name, count] for name, count in self.sources.most_common()]
        if job.rows_copied:
            self._copies.seek(0)
            job.copies_file.save(f"{job.code}-copies.jsonl", File(self._copies), save=False)


class _Joined(Aggregate):
    """A column's values as text joined by commas, in the database (SQLite's GROUP_CONCAT)."""

    function = "GROUP_CONCAT"
    template = "%(function)s(CAST(%(expressions)s AS TEXT), ',')"
    output_field = TextField()

    def as_postgresql(self, compiler, connection, **extra):
        return self.as_sql(compiler, connection, function="STRING_AGG", **extra)


def _text_keys(entries) -> set[int]:
    """The text keys of these index entries, as one string from the database (read from the index of
    jobs and keys alone) parsed by orjson: a million in a quarter of a second, a row each took two."""
    text = entries.aggregate(text=_Joined("text_key"))["text"]
    return set(orjson.loads(f"[{text}]")) if text else set()


def _text_keys_apart(entries) -> set[int]:
    """_text_keys in _LOADER's thread, on a database connection of its own, closed when done."""
    try:
        return _text_keys(entries)
    finally:
        connections.close_all()


# One thread for the whole process: prepares follow one another in a worker's process.
_LOADER = ThreadPoolExecutor(1, thread_name_prefix="reuse-index")


@contextlib.contextmanager
def answered_rows(job: Job, spec: str) -> Iterator[Answered]:
    """Answered for a job whose requests' settings have this spec_fingerprint."""
    with tempfile.TemporaryFile() as reused, tempfile.TemporaryFile() as copies:
        yield Answered(job, spec, reused, copies)


def with_copies(job: Job, outcomes: Iterator[tuple[reconcile.Outcome, int]]):
    """The job's latest outcomes with the rows that repeated an earlier row given that row's outcome."""
    copies = _copies(job)
    yield from copied(outcomes, copies) if copies else outcomes


def with_first_rows(job: Job, rows: set[int]) -> set[int]:
    """`rows` and, for those that repeat an earlier row's request, that row."""
    return rows | {first for row, first in _copies(job) if row in rows}


def _copies(job: Job) -> list[tuple[int, int]]:
    """The job's (row, first row with the same request) pairs, in row order."""
    if not job.copies_file:
        return []
    with job.copies_file.open("rb") as fh:
        return [tuple(orjson.loads(line)) for line in fh]


def copied(outcomes, copies: list[tuple[int, int]]):
    """Merge (row, first row) copies, sorted by row, into outcomes sorted by row: a row before its
    copies, so the outcomes of the first rows are kept only until their copies are given them.
    """
    wanted = {first for _, first in copies}
    kept: dict[int, tuple[reconcile.Outcome, int]] = {}
    pending = iter(copies)
    copy = next(pending, None)

    def copies_before(row: int | None):
        nonlocal copy
        while copy is not None and (row is None or copy[0] < row):
            if copy[1] in kept:
                yield _copy_of(*kept[copy[1]], copy)
            copy = next(pending, None)

    for outcome, attempts in outcomes:
        yield from copies_before(outcome.row)
        if outcome.row in wanted:
            kept[outcome.row] = (outcome, attempts)
        yield outcome, attempts
    yield from copies_before(None)


def _copy_of(outcome: reconcile.Outcome, attempts: int, copy: tuple[int, int]):
    row, first = copy
    if not outcome.ok:
        return reconcile.Outcome(row, False, "", outcome.code, outcome.message, outcome.retryable), attempts
    message = f"The same request as row {first} of this job, which was sent once."
    return (
        reconcile.Outcome(
            row, True, outcome.answer, REUSED, message, False, outcome.input_tokens, outcome.output_tokens
        ),
        attempts,
    )


def index_answers(job: Job, attempts: list[list[Iterator[reconcile.Outcome]]]) -> None:
    """Put the job's succeeded, sent answers into the index, fingerprinted from its request files."""
    ReusableAnswer.objects.filter(job=job).delete()  # an earlier build of the same job's results
    if job.credential.reuse_scope == ProviderCredential.ReuseScope.OFF:
        return
    sources = list(job.batches.filter(attempt=1).exclude(input_file="").order_by("index"))
    if not sources:
        return
    builder = RequestBuilder(request_spec(job), job.dataset.columns)
    # Both in row order: the first attempt's request lines, part after part, and the latest outcomes.
    succeeded = (o for o, _ in latest_outcomes(attempts) if o.ok and o.code != REUSED)
    outcome = next(succeeded, None)
    entries = []
    for batch in sources:
        with rawfiles.lines(batch.input_file) as fh:
            for line in fh:
                row = line_row(line)
                while outcome is not None and row is not None and outcome.row < row:
                    outcome = next(succeeded, None)
                if outcome is None or outcome.row != row:
                    continue
                request = orjson.loads(line)
                entries.append(_entry(job, outcome, builder, request))
                if len(entries) >= CHUNK:
                    ReusableAnswer.objects.bulk_create(entries)
                    entries.clear()
    ReusableAnswer.objects.bulk_create(entries)
    Job.objects.filter(pk=job.pk).update(request_settings=builder.spec_fingerprint)


def _entry(job: Job, outcome: reconcile.Outcome, builder: RequestBuilder, request: dict) -> ReusableAnswer:
    return ReusableAnswer(
        fingerprint=fingerprint(request["url"], request["body"]),
        text_key=builder.text_key(request["body"]),
        job=job,
        row=outcome.row,
        answer=outcome.answer,
        input_tokens=outcome.input_tokens,
        output_tokens=outcome.output_tokens,
    )


def forget(job_ids: Any) -> None:
    """The index entries of these jobs, whose raw files passed their retention."""
    ReusableAnswer.objects.filter(job__in=job_ids).delete()
