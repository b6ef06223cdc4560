"""The prepare step on a million rows with a warm fingerprint index of 1,000,000 entries.

The same work as bench.prepare's `ours reviews`, as a job at temperature 0 is prepared: repeats
within the table sent once and, when the index holds answers in scope made with the same settings,
every row's CRC looked up in memory, and the rows found fingerprinted and read from the database
(SQLite here). The index's 1,000,000 entries answer other texts, so no lookup saves work: the
slowest case.
Measured beside it, in this process, alternately, best of three each: the same with an empty
index, with the index's answers made with other settings (another prompt), and without reuse.
"""

import contextlib
import os
import random
import secrets
import tempfile
from pathlib import Path

from bench.data import ROOT, WORDS, reviews_csv
from bench.measure import report, stopwatch
from bench.prepare import MODEL, PROMPT

DATABASE = ROOT / "reuse-index.sqlite3"
ENTRIES = 1_000_000
RUNS = 3


def index_job():
    """The job the bench prepares, on a database whose index holds ENTRIES answers of its team, and
    the job those answers came from.
    """
    from django.contrib.auth.models import Group, User
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.core.management import call_command

    from jobs import datasets
    from jobs.formats.requestfiles import CHAT, RequestBuilder, RequestSpec
    from jobs.models import Job, ProviderCredential, ReusableAnswer

    call_command("migrate", verbosity=0)
    job = Job.objects.filter(name="Prepared").select_related("credential", "owner").first()
    if job and ReusableAnswer.objects.count() == ENTRIES:
        return job, Job.objects.get(name="Earlier")
    Job.objects.filter(name__in=("Earlier", "Prepared")).delete()  # a database made by an older bench
    user = User.objects.create_user(f"bench-{secrets.token_hex(4)}")
    team = Group.objects.create(name=f"Bench {user.username}")
    user.groups.add(team)
    credential = ProviderCredential(name="Bench", kind=ProviderCredential.Kind.SIMULATOR)
    credential.set_api_key("sk-bench")
    credential.save()
    dataset = datasets.create_from_upload(
        user, SimpleUploadedFile("reviews.csv", b"Review Text\ngood\n", content_type="text/csv")
    )
    common = dict(owner=user, team=team, dataset=dataset, credential=credential, model=MODEL, temperature=0)
    earlier = Job.objects.create(name="Earlier", status=Job.Status.COMPLETED, **common)
    # Answers to other reviews of the same shape and length, so that their keys are as alike as a real
    # index's: each a review the table does not hold.
    builder = RequestBuilder(RequestSpec(CHAT, MODEL, user_prompt=PROMPT, temperature=0), ["Review Text"])
    rng = random.Random(7)
    for start in range(0, ENTRIES, 20_000):
        texts = [
            builder.texts([" ".join(rng.choices(WORDS, k=rng.randint(5, 14))) + " (earlier)"])[1]
            for _ in range(20_000)
        ]
        ReusableAnswer.objects.bulk_create(
            ReusableAnswer(
                fingerprint=secrets.token_hex(16),
                text_key=key,
                job=earlier,
                row=row,
                answer="positive",
            )
            for row, key in enumerate(builder.text_keys(texts, None), start + 1)
        )
    job = Job.objects.create(name="Prepared", status=Job.Status.PREPARING, user_prompt=PROMPT, **common)
    return job, earlier


def prepare(path: Path, out: Path, job=None) -> int:
    """bench.prepare's step, with the app's reuse when a job is given; the rows it went through."""
    from django.conf import settings

    from jobs.formats import tables, tokens
    from jobs.formats.requestfiles import CHAT, RequestBuilder, RequestSpec, write_batch_files
    from jobs.pipeline import reuse

    with path.open("rb") as stream, contextlib.ExitStack() as stack:
        info = tables.inspect(stream, path.name)
        stream.seek(0)
        builder = RequestBuilder(RequestSpec(CHAT, MODEL, user_prompt=PROMPT, temperature=0), info.columns)
        answered = stack.enter_context(reuse.answered_rows(job, builder.spec_fingerprint)) if job else None
        parts = write_batch_files(
            tables.iter_rows(stream, info),
            builder,
            out,
            max_requests=50_000,
            max_bytes=200_000_000,
            count_tokens=tokens.prompt_counter(MODEL, CHAT),
            skip=lambda row, code, prompt_tokens: None,
            skip_empty="all",
            max_prompt_tokens=128_000,
            lookup=answered.lookup if answered else None,
            known=answered.known if answered else None,
            answered=answered.answered if answered else None,
            same_as=answered.same_as if answered else None,
            processes=settings.PREPARE_PROCESSES,
        )
        sent = sum(part.request_count for part in parts)
        return sent + (job.rows_reused + job.rows_copied if job else 0)


def main() -> None:
    os.environ["DATABASE_URL"] = f"sqlite:///{DATABASE}"
    import django

    django.setup()
    from jobs.formats.requestfiles import CHAT, RequestBuilder, RequestSpec

    job, earlier = index_job()
    same = RequestBuilder(RequestSpec(CHAT, MODEL, user_prompt=PROMPT, temperature=0), ["Review Text"])
    # Which settings the index's answers were made with, for each case.
    cases = {
        "cached": same.spec_fingerprint,
        "cached_other_prompts": secrets.token_hex(16),
        "uncached": "",
        "no_reuse": None,
    }
    path = reviews_csv()
    figures = dict.fromkeys(cases, 0.0)
    for _ in range(RUNS):
        for name, settings in cases.items():
            earlier.request_settings = settings or ""
            earlier.save(update_fields=["request_settings"])
            with tempfile.TemporaryDirectory() as tmp, stopwatch() as timing:
                rows = prepare(path, Path(tmp), job if settings is not None else None)
            figures[name] = max(figures[name], rows / timing["seconds"])
    for name, value in figures.items():
        report(f"prepare_{name}_rows_per_s", value, "rows/s")
    report("prepare_cached_vs_uncached", 100 * figures["cached"] / figures["uncached"], "%")
    report("prepare_cached_repeats_sent_once", job.rows_copied, "rows")


if __name__ == "__main__":
    main()
