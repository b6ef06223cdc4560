"""The job's and the batch's state machines, declared once: their states, the moves between them, and who
makes each move.

The models take their status choices from here, `transition()` refuses a move that is not declared here,
and the README's state diagram is drawn from these tables (a test checks that it is).
"""

from dataclasses import dataclass

from django.db.models import TextChoices


class JobStatus(TextChoices):
    PREPARING = "preparing", "Preparing"
    PLANNED = "planned", "Ready to send"
    RUNNING = "running", "Running"
    NEEDS_ADMIN = "needs_admin", "Needs an admin"
    AWAITING_APPROVAL = "awaiting_approval", "Waiting for approval"
    FINISHING = "finishing", "Collecting results"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    CANCELLING = "cancelling", "Cancelling"
    CANCELLED = "cancelled", "Cancelled"


class BatchStatus(TextChoices):
    QUEUED = "queued", "Queued"
    SUBMITTING = "submitting", "Submitting"
    ANSWERING = "answering", "Answering now"
    RUNNING = "running", "At the provider"
    DOWNLOADING = "downloading", "Downloading results"
    DONE = "done", "Done"


@dataclass(frozen=True)
class Move:
    source: str
    target: str
    by: str  # the module or the person that makes the move
    when: str


@dataclass(frozen=True)
class Machine:
    name: str
    states: type[TextChoices]
    initial: str
    final: tuple[str, ...]
    moves: tuple[Move, ...]

    def allows(self, source: str, target: str) -> bool:
        return any(m.source == source and m.target == target for m in self.moves)

    def check(self, sources, target: str) -> None:
        """Raise ValueError for a move this machine does not declare (a bug, never a user's doing)."""
        for source in [sources] if isinstance(sources, str) else sources:
            if not self.allows(source, target):
                raise ValueError(f"{self.name}: no move from '{source}' to '{target}' is declared")

    def mermaid(self) -> str:
        """The machine as a Mermaid state diagram, for the README."""
        lines = ["stateDiagram-v2", f"    [*] --> {self.initial}"]
        for move in self.moves:
            lines.append(f"    {move.source} --> {move.target}: {move.when}")
        lines += [f"    {state} --> [*]" for state in self.final]
        return "\n".join(lines)


J = JobStatus
CANCELLABLE = (J.PREPARING, J.PLANNED, J.AWAITING_APPROVAL, J.RUNNING, J.NEEDS_ADMIN)
FINISHED = (J.COMPLETED, J.FAILED, J.CANCELLED)

JOB = Machine(
    name="Job",
    states=JobStatus,
    initial=J.PREPARING,
    final=FINISHED,
    moves=(
        Move(J.PREPARING, J.PLANNED, "pipeline.stage1_prepare", "requests built, plan shown"),
        Move(J.PREPARING, J.FAILED, "pipeline.stage1_prepare", "nothing can be sent"),
        Move(J.PLANNED, J.PREPARING, "pipeline.stop (Send them again anyway)", "made again, reusing nothing"),
        Move(J.PLANNED, J.RUNNING, "pipeline.stage2_release (the owner's Send)", "sent through the gate"),
        Move(
            J.PLANNED,
            J.RUNNING,
            "pipeline.runnow (the owner's Run now)",
            "through the gate at the normal price",
        ),
        Move(
            J.PLANNED,
            J.AWAITING_APPROVAL,
            "pipeline.stage2_release (the owner's Send)",
            "above the approval threshold",
        ),
        Move(J.AWAITING_APPROVAL, J.RUNNING, "pipeline.stage2_release (an admin's Approve)", "approved"),
        Move(
            J.AWAITING_APPROVAL,
            J.PLANNED,
            "pipeline.stage2_release (an admin's Decline)",
            "declined, with a note",
        ),
        Move(J.RUNNING, J.NEEDS_ADMIN, "jobs.keys", "the provider refused the key"),
        Move(J.NEEDS_ADMIN, J.RUNNING, "jobs.keys", "an admin replaced the key"),
        *(Move(state, J.CANCELLING, "the owner (Cancel)", "cancel") for state in CANCELLABLE),
        Move(J.CANCELLING, J.CANCELLED, "pipeline.stop", "nothing was sent"),
        Move(J.RUNNING, J.FINISHING, "pipeline.stage6_results", "every part done"),
        Move(J.CANCELLING, J.FINISHING, "pipeline.stage6_results", "every part stopped"),
        Move(J.FINISHING, J.COMPLETED, "pipeline.stage6_results", "some rows answered"),
        Move(J.FINISHING, J.FAILED, "pipeline.stage6_results", "no row answered"),
        Move(J.FINISHING, J.CANCELLED, "pipeline.stage6_results", "results of a cancelled job"),
        *(Move(state, J.RUNNING, "pipeline.stage7_retry", "failed rows resent") for state in FINISHED),
        *(
            Move(state, J.AWAITING_APPROVAL, "pipeline.stage7_retry", "resend above the approval threshold")
            for state in FINISHED
        ),
    ),
)

B = BatchStatus
BATCH = Machine(
    name="Batch",
    states=BatchStatus,
    initial=B.QUEUED,
    final=(B.DONE,),
    moves=(
        Move(B.QUEUED, B.SUBMITTING, "pipeline.stage2_release", "room in the provider's queue"),
        Move(
            B.QUEUED,
            B.DONE,
            "pipeline.stop, pipeline.stage2_release, pipeline.runnow",
            "not sent: cancelled first (or while Run now ran), or held back by the budget",
        ),
        Move(B.QUEUED, B.ANSWERING, "pipeline.runnow (the owner's Run now)", "answered at the normal API"),
        Move(
            B.ANSWERING, B.DOWNLOADING, "pipeline.runnow", "its rows answered; the rest switched or cancelled"
        ),
        Move(B.ANSWERING, B.QUEUED, "pipeline.runnow", "switched to Batch before any row was answered"),
        Move(B.SUBMITTING, B.RUNNING, "pipeline.stage3_submit", "remote batch created"),
        Move(B.SUBMITTING, B.DONE, "pipeline.stage3_submit", "refused, or job cancelled"),
        Move(B.RUNNING, B.DOWNLOADING, "pipeline.stage4_poll", "ended at the provider"),
        Move(B.DOWNLOADING, B.DONE, "pipeline.stage5_finish", "outcomes reconciled"),
        Move(B.DOWNLOADING, B.QUEUED, "pipeline.stage5_finish", "provider's queue was full"),
        Move(B.DONE, B.QUEUED, "pipeline.stage7_retry", "never sent: sent later through the gate"),
    ),
)
