"""A row's request and the provider's answer, read on demand from our copies for the review page."""

from jobs import rawfiles
from jobs.formats.requestfiles import custom_id as custom_id_of
from jobs.formats.requestreads import line_row
from jobs.models import Job


def row_exchange(job: Job, row: int) -> tuple[bytes | None, bytes | None]:
    """The request we sent for a row and the provider's answer line, from the latest attempt that had it.

    Read on demand from our copies of the files, newest attempt first.
    """
    candidates = job.batches.filter(first_row__lte=row, last_row__gte=row).order_by("-attempt")
    for batch in candidates:
        if not batch.input_file.name:
            continue
        with rawfiles.lines(batch.input_file) as fh:
            request = next((line for line in fh if line_row(line) == row), None)
        if request is None:
            continue
        custom_id = f'"custom_id":"{custom_id_of(row)}"'.encode()
        for field in (batch.output_file, batch.error_file):
            if field.name:
                with rawfiles.lines(field) as fh:
                    answer = next((line for line in fh if custom_id in line.replace(b'": "', b'":"')), None)
                if answer is not None:
                    return request, answer
        return request, None
    return None, None
