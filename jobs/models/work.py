"""A job, the batches it is sent in, and the rows that failed: the pipeline's state, kept in our tables.

Status moves are declared in jobs.states; each is made with a conditional UPDATE that tells the caller
whether it won, so a task that runs twice (redelivery, two workers, a restart) never does the work twice.
"""

import uuid
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import models
from django.db.models import Q
from django.utils import timezone

from jobs import states
from jobs.models.inputs import Dataset, PromptSettings
from jobs.models.keys import ProviderCredential
from jobs.models.paths import _PrivatePath


class Job(PromptSettings):
    """One user's run of a prompt template over a dataset; split into provider batches."""

    Status = states.JobStatus
    FINISHED = states.FINISHED
    CANCELLABLE = states.CANCELLABLE

    code = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="jobs")
    team = models.ForeignKey(Group, null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs")
    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="jobs")
    credential = models.ForeignKey(ProviderCredential, on_delete=models.PROTECT, related_name="jobs")
    name = models.CharField(max_length=200)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PREPARING)

    resubmit_expired = models.BooleanField(
        default=True, help_text="Send again, in a follow-up batch, the rows of a batch that expired."
    )
    # The average answer length of the pilot run, if the user tried one: the plan's expected cost.
    pilot_output_tokens = models.FloatField(null=True, blank=True)
    id_column = models.CharField(
        max_length=255,
        blank=True,
        help_text="A column whose values name each row; empty to number the rows instead.",
    )

    empty_rows = models.CharField(
        max_length=4, choices=PromptSettings.EmptyRows.choices, default=PromptSettings.EmptyRows.ALL
    )

    rows_total = models.PositiveIntegerField(default=0)
    rows_processed = models.PositiveIntegerField(default=0)
    rows_succeeded = models.PositiveIntegerField(default=0)
    rows_failed = models.PositiveIntegerField(default=0)
    # Failed rows worth sending again as they are, counted when the results are built.
    rows_retryable = models.PositiveIntegerField(default=0)
    # Rows sent again after they had failed: more work, so that the bar never goes back. A follow-up of
    # an expired part is not counted: it finishes the same rows (Batch.rows_superseded).
    rows_resent = models.PositiveIntegerField(default=0)
    input_tokens = models.PositiveBigIntegerField(default=0)
    output_tokens = models.PositiveBigIntegerField(default=0)
    # Prompt tokens as the provider reported them in its answers (what is billed).
    reported_input_tokens = models.PositiveBigIntegerField(default=0)
    # Of the reported tokens, those of rows answered by Run now: billed at the normal price.
    now_input_tokens = models.PositiveBigIntegerField(default=0)
    now_output_tokens = models.PositiveBigIntegerField(default=0)
    # The plan's batch price when the job was prepared (the normal price once it runs now, then the
    # answered rows' normal price and the rest's batch price once switched); None when the model has no
    # price.
    estimated_cost = models.DecimalField(max_digits=14, decimal_places=6, null=True, blank=True)
    # What the plan said when the job was sent, each resend adding its own, for the estimate report
    # (jobs.money.estimates): prompt tokens, answer tokens (expected from the trial run, or at their
    # bound without one) and their batch price. None for jobs sent before the plan was kept.
    planned_prompt_tokens = models.PositiveBigIntegerField(null=True, blank=True)
    planned_answer_tokens = models.PositiveBigIntegerField(null=True, blank=True)
    planned_answers_bounded = models.BooleanField(default=False)
    planned_cost = models.DecimalField(max_digits=14, decimal_places=6, null=True, blank=True)
    error = models.TextField(blank=True)

    results_file = models.FileField(upload_to=_PrivatePath("results"), blank=True)
    failures_file = models.FileField(upload_to=_PrivatePath("results"), blank=True)
    xlsx_file = models.FileField(upload_to=_PrivatePath("results"), blank=True)
    # Where every 1,000th row starts in the results file, so that the results view reads a far page
    # from near it (jobs.formats.resultpages): about 10 kB for a million rows.
    results_offsets = models.JSONField(default=list, blank=True)
    # Cells longer than Excel allows, cut in the Excel copy only (the CSV keeps them whole).
    xlsx_cut_cells = models.PositiveIntegerField(default=0)
    # Written once, after the results CSV; jobs from before it have none and stream it instead.
    jsonl_file = models.FileField(upload_to=_PrivatePath("results"), blank=True)
    # The results CSV is there; its Excel copy and JSON Lines file are being written after it.
    formats_pending = models.BooleanField(default=False)
    # Rows prepare left out (empty, or longer than the model accepts), as outcomes with the reason.
    skipped_file = models.FileField(upload_to=_PrivatePath("results"), blank=True)
    rows_skipped = models.PositiveIntegerField(default=0)
    # Reuse of earlier answers to identical requests (jobs.pipeline.reuse). Ticked, it reaches requests
    # with a temperature above 0 too; temperature 0 and embeddings reuse without it.
    reuse_answers = models.BooleanField(default=False)
    # "Send them again anyway" on the plan: no earlier answer is taken.
    send_again = models.BooleanField(default=False)
    # Rows answered at prepare from earlier answers (outcomes with the answer), and rows whose request is
    # the same as an earlier row of this job ([row, that row] lines), neither of them sent.
    reused_file = models.FileField(upload_to=_PrivatePath("results"), blank=True)
    copies_file = models.FileField(upload_to=_PrivatePath("results"), blank=True)
    rows_reused = models.PositiveIntegerField(default=0)
    rows_copied = models.PositiveIntegerField(default=0)
    # What the reused rows would have cost through the Batch API, and the jobs they came from by name.
    reuse_saving = models.DecimalField(max_digits=14, decimal_places=6, default=0)
    reused_from = models.JSONField(default=list, blank=True)
    # RequestBuilder.spec_fingerprint of its requests' settings, once its answers are in the index:
    # prepare asks for jobs in scope with the same, and reads only their fingerprints.
    request_settings = models.CharField(max_length=32, blank=True, db_index=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    # Why an admin declined to approve the job, for its owner to read on the plan.
    decline_note = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # The job list, newest first, for a member and for an admin.
            models.Index(fields=["owner", "-created_at"], name="job_owner_recent"),
            models.Index(fields=["-created_at"], name="job_recent"),
            # The sweeper's query for jobs whose background step may have been lost.
            models.Index(
                fields=["status", "updated_at"],
                name="job_unfinished",
                condition=Q(status__in=["preparing", "finishing"]),
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED

    @property
    def is_moving(self) -> bool:
        """Work is under way without the user: the page keeps following it."""
        return self.status not in self.FINISHED and self.status not in (
            self.Status.PLANNED,
            self.Status.AWAITING_APPROVAL,
            self.Status.NEEDS_ADMIN,
        )

    @property
    def is_followed(self) -> bool:
        """The job page polls: the job moves, or its Excel and JSON Lines files are on their way."""
        return self.is_moving or self.formats_pending

    @property
    def can_cancel(self) -> bool:
        return self.status in self.CANCELLABLE

    @property
    def rows_not_sent(self) -> int:
        """Rows of a finished job that never went to the provider (its cancel came first, or the budget
        held them back): neither answered nor failed."""
        if not self.is_finished:
            return 0
        return max(0, self.rows_total - self.rows_succeeded - self.rows_failed)

    @property
    def rows_work(self) -> int:
        """Requests to process: every row once, and each row sent again once more."""
        return self.rows_total + self.rows_resent

    @property
    def percent_done(self) -> int:
        if self.status == self.Status.COMPLETED and not self.rows_not_sent:
            return 100
        if not self.rows_work:
            return 0
        return min(100, int(100 * self.rows_processed / self.rows_work))

    @property
    def time_left(self) -> timedelta | None:
        """From the rate observed since the job was sent; None until there is a rate to go by."""
        if self.status != self.Status.RUNNING or not self.started_at or not self.rows_processed:
            return None
        remaining = self.rows_work - self.rows_processed
        if remaining <= 0:
            return None
        elapsed = (timezone.now() - self.started_at).total_seconds()
        return timedelta(seconds=elapsed * remaining / self.rows_processed)

    @property
    def time_left_text(self) -> str:
        """The time left in words: "less than a minute left", never "about 0 minutes"."""
        left = self.time_left
        if left is None:
            return ""
        minutes = left.total_seconds() / 60
        if minutes < 1:
            return "less than a minute left"
        if minutes < 90:
            return f"about {round(minutes)} minute{'s' if round(minutes) != 1 else ''} left"
        hours = minutes / 60
        if hours < 36:
            return f"about {round(hours)} hours left"
        return f"about {round(hours / 24)} days left"

    @property
    def status_text(self) -> str:
        """The status as people read it: a completed job with failures says how many."""
        if self.status == self.Status.COMPLETED and self.rows_failed:
            return f"Completed · {self.rows_failed:,} failed"
        return self.get_status_display()

    def transition(self, from_statuses, to_status: str, **fields) -> bool:
        """Move to `to_status` only if still in one of `from_statuses`; True if this caller won."""
        states.JOB.check(from_statuses, to_status)
        if isinstance(from_statuses, str):
            from_statuses = [from_statuses]
        won = Job.objects.filter(pk=self.pk, status__in=from_statuses).update(
            status=to_status, updated_at=timezone.now(), **fields
        )
        if won:
            self.refresh_from_db()
        return bool(won)


class Batch(models.Model):
    """One provider batch: a part of a job, from its request file to its reconciled outcomes.

    `status` is our own state machine (jobs.states.BATCH); `remote_status` is what the provider said last.
    """

    Status = states.BatchStatus

    REMOTE_TERMINAL = ("completed", "failed", "expired", "cancelled")

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="batches")
    index = models.PositiveIntegerField()
    attempt = models.PositiveIntegerField(default=1)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    # Our idempotency key: sent in the batch metadata and the upload's file name, so
    # that a retry after a crash finds what an earlier attempt already created.
    token = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)

    first_row = models.PositiveIntegerField()
    last_row = models.PositiveIntegerField()
    request_count = models.PositiveIntegerField()
    input_bytes = models.PositiveBigIntegerField(default=0)
    input_tokens = models.PositiveBigIntegerField(default=0)
    input_file = models.FileField(upload_to=_PrivatePath("batches"))

    remote_file_id = models.CharField(max_length=100, blank=True)
    remote_batch_id = models.CharField(max_length=100, null=True, blank=True, unique=True)
    remote_status = models.CharField(max_length=20, blank=True)
    remote_output_file_id = models.CharField(max_length=100, blank=True)
    remote_error_file_id = models.CharField(max_length=100, blank=True)
    remote_errors = models.JSONField(default=list, blank=True)
    remote_status_since = models.DateTimeField(null=True, blank=True)
    last_poll_ms = models.FloatField(null=True, blank=True)
    provider_files_deleted = models.BooleanField(default=False)
    # When the owner was told that this part is slower than usual (once per part).
    flagged_at = models.DateTimeField(null=True, blank=True)
    requests_completed = models.PositiveIntegerField(default=0)
    requests_failed = models.PositiveIntegerField(default=0)
    # Run now: this part is answered one request at a time through the normal (synchronous) API, at
    # the normal price, by jobs.pipeline.runnow, which writes an output file shaped like a batch's.
    synchronous = models.BooleanField(default=False)
    # The owner asked to send the rows not answered yet through the Batch API instead.
    switch_requested_at = models.DateTimeField(null=True, blank=True)
    # The provider's 429s while answering now, and the seconds waited as its Retry-After asked.
    throttled = models.PositiveIntegerField(default=0)
    throttled_seconds = models.FloatField(default=0)

    output_file = models.FileField(upload_to=_PrivatePath("batches"), blank=True)
    error_file = models.FileField(upload_to=_PrivatePath("batches"), blank=True)
    outcomes_file = models.FileField(upload_to=_PrivatePath("batches"), blank=True)
    rows_succeeded = models.PositiveIntegerField(default=0)
    rows_failed = models.PositiveIntegerField(default=0)
    # Of rows_failed, those that expired unfinished and went into a follow-up part (the same index, the
    # next attempt): that part answers them, so they are neither failures nor work done here.
    rows_superseded = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveBigIntegerField(default=0)
    reported_input_tokens = models.PositiveBigIntegerField(default=0)
    failure_codes = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)

    # Waiting in our queue: not sent before this time (after the provider's queue was full).
    not_before = models.DateTimeField(null=True, blank=True)
    requeues = models.PositiveIntegerField(default=0)
    submit_attempts = models.PositiveIntegerField(default=0)
    submit_started_at = models.DateTimeField(null=True, blank=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    next_poll_at = models.DateTimeField(null=True, blank=True)
    poll_interval = models.FloatField(default=0)
    finished_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["job", "attempt", "index"]
        constraints = [
            models.UniqueConstraint(fields=["job", "attempt", "index"], name="batch_unique_part"),
        ]
        indexes = [
            # The scheduler's "which batches are due for a poll" query.
            models.Index(fields=["next_poll_at"], name="batch_due_poll", condition=Q(status="running")),
            # The sweeper's query for submissions and downloads whose message was lost.
            models.Index(
                fields=["status", "updated_at"],
                name="batch_in_flight",
                condition=Q(status__in=["queued", "submitting", "answering", "downloading"]),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.job} part {self.index + 1}"

    @property
    def display_state(self) -> str:
        """What a user calls this part's state: queued, validating, in progress, …, done, failed."""
        if self.status == self.Status.RUNNING and self.remote_status:
            return self.remote_status.replace("_", " ")
        if self.never_sent:
            return "not sent"
        if self.status == self.Status.DONE and self.remote_status in ("failed", "expired", "cancelled"):
            return self.remote_status
        if self.status == self.Status.DONE and self.error:
            return "failed"
        return self.get_status_display().lower()

    @property
    def never_sent(self) -> bool:
        """Done without going out: its job was cancelled first, or the budget held it back."""
        return (
            self.status == self.Status.DONE
            and not self.remote_batch_id
            and not self.rows_succeeded + self.rows_failed
        )

    @property
    def rows_failed_here(self) -> int:
        """Rows that failed in this part for good: those a follow-up took over are not its failures."""
        return self.rows_failed - self.rows_superseded

    @property
    def looks_stuck(self) -> bool:
        """In `validating` or `finalizing` far longer than usual: flagged for people, never resubmitted."""
        minutes = {
            "validating": settings.STUCK_VALIDATING_MINUTES,
            "finalizing": settings.STUCK_FINALIZING_MINUTES,
        }.get(self.remote_status)
        if self.status != self.Status.RUNNING or minutes is None or not self.remote_status_since:
            return False
        return timezone.now() - self.remote_status_since > timedelta(minutes=minutes)

    def transition(self, from_status: str, to_status: str, **fields) -> bool:
        """Conditional UPDATE: True if this caller moved the batch out of `from_status`."""
        states.BATCH.check(from_status, to_status)
        won = Batch.objects.filter(pk=self.pk, status=from_status).update(
            status=to_status, updated_at=timezone.now(), **fields
        )
        if won:
            self.refresh_from_db()
        return bool(won)

    def schedule_next_poll(self, progressed: bool) -> None:
        """Back off while nothing changes; come back sooner when the batch is moving."""
        credential = self.job.credential
        if progressed or not self.poll_interval:
            interval = credential.poll_min_seconds
        else:
            interval = min(credential.poll_max_seconds, self.poll_interval * 1.5)
        self.poll_interval = interval
        self.next_poll_at = timezone.now() + timedelta(seconds=interval)


class RowFailure(models.Model):
    """A row whose latest attempt failed, kept for the review page (written with the results)."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="row_failures")
    row = models.PositiveIntegerField()
    code = models.CharField(max_length=100)
    message = models.TextField()
    retryable = models.BooleanField()
    attempts = models.PositiveIntegerField()
    cells = models.JSONField()

    class Meta:
        ordering = ["job", "row"]
        constraints = [models.UniqueConstraint(fields=["job", "row"], name="row_failure_unique")]
        indexes = [models.Index(fields=["job", "code", "row"], name="row_failure_code")]

    def __str__(self) -> str:
        return f"{self.job} row {self.row}"


class PilotRun(models.Model):
    """Rows tried at once through the synchronous API before a job exists: spend like any other."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="pilot_runs")
    credential = models.ForeignKey(
        ProviderCredential, null=True, on_delete=models.SET_NULL, related_name="pilot_runs"
    )
    model = models.CharField(max_length=100)
    rows = models.PositiveIntegerField(default=0)
    input_tokens = models.PositiveBigIntegerField(default=0)
    output_tokens = models.PositiveBigIntegerField(default=0)
    # At the synchronous price: what the provider bills for these calls.
    cost = models.DecimalField(max_digits=14, decimal_places=6, default=0)
    at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-at"]

    def __str__(self) -> str:
        return f"{self.owner} pilot of {self.model} at {self.at:%Y-%m-%d %H:%M}"


class ReusableAnswer(models.Model):
    """The fingerprint index: a succeeded answer of a sent request, for identical requests to take.

    Entries go with their job, and when its raw files pass their retention.
    """

    fingerprint = models.CharField(max_length=32, db_index=True)
    # RequestBuilder.text_key of the same request: prepare loads these, a job's from the index below
    # alone, and fingerprints only the rows whose key one of them shares.
    text_key = models.PositiveBigIntegerField()
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="reusable_answers", db_index=False)
    row = models.PositiveIntegerField()
    answer = models.TextField()
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)

    class Meta:
        indexes = [models.Index(fields=["job", "text_key"], name="reusable_answer_job_key")]

    def __str__(self) -> str:
        return f"{self.fingerprint} (job {self.job_id}, row {self.row})"
