"""The life of a job, one module per stage, each safe to run twice:

    stage1_prepare → stage2_release → stage3_submit → stage4_poll → stage5_finish → stage6_results
    → (stage7_retry → stage3 …)

or, for a small table, stage1_prepare → runnow (the normal API, at once) → stage5_finish → …,
with `stop` (cancel, delete, clean up), `key_refusal` (a refused key pauses its jobs), `sweep`
(work whose message was lost) and `review` (a row's request and answer). The moves each stage makes
are declared in jobs.states.

Celery tasks in jobs.tasks call these and decide what to enqueue next; the stages themselves never
enqueue. Each starts by claiming its row with a conditional UPDATE and returns quietly if another
run got there first. Remote side effects are recorded as soon as they exist, and no provider call
happens inside a transaction. This package's names are the pipeline's public steps.
"""

from jobs.pipeline.common import refresh_job_counters, request_spec
from jobs.pipeline.key_refusal import key_refused, key_replaced
from jobs.pipeline.review import row_exchange
from jobs.pipeline.runnow import answer_now, run_now, switch_to_batch
from jobs.pipeline.stage1_prepare import prepare_job, prompt_limit
from jobs.pipeline.stage2_release import (
    approve_job,
    decline_job,
    release_queued_batches,
    start_first_rows,
    start_job,
)
from jobs.pipeline.stage3_submit import METADATA_KEY, submit_batch
from jobs.pipeline.stage4_poll import claim_due_batches, poll_batch
from jobs.pipeline.stage5_finish import finish_batch
from jobs.pipeline.stage6_results import build_results, results_jsonl, start_results, write_other_formats
from jobs.pipeline.stage7_retry import RetryRefused, resend_with_prompt, retry_job
from jobs.pipeline.stop import (
    cancel_job,
    cancel_unsent,
    clean_up_files,
    delete_job,
    delete_remote_files,
    discard_job,
    prepare_without_reuse,
)
from jobs.pipeline.sweep import stalled_work

__all__ = [
    "prepare_job",
    "prompt_limit",
    "request_spec",
    "start_first_rows",
    "start_job",
    "run_now",
    "answer_now",
    "switch_to_batch",
    "approve_job",
    "decline_job",
    "release_queued_batches",
    "METADATA_KEY",
    "submit_batch",
    "claim_due_batches",
    "poll_batch",
    "finish_batch",
    "start_results",
    "build_results",
    "results_jsonl",
    "write_other_formats",
    "RetryRefused",
    "retry_job",
    "resend_with_prompt",
    "refresh_job_counters",
    "cancel_job",
    "cancel_unsent",
    "delete_job",
    "discard_job",
    "prepare_without_reuse",
    "delete_remote_files",
    "clean_up_files",
    "key_refused",
    "key_replaced",
    "stalled_work",
    "row_exchange",
]
