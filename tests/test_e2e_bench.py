"""The end-to-end benchmarks' drivers, on a small table, so that `make bench` cannot rot unseen.

Each starts the embedded stack as `make run` does (bench.stack) and drives it over HTTP as a
browser would; the figures themselves are `make bench`'s, never asserted here as times.
"""

import pytest

from bench import e2e, poll_load
from bench.viewer import POLL_EVERY

pytestmark = [pytest.mark.soak, pytest.mark.worker]


def test_the_end_to_end_bench_drives_a_job_from_upload_to_every_download(tmp_path):
    figures = e2e.run(2000, tmp_path / "work", folder=tmp_path)

    assert figures["prepare_reference_s"] > 0
    assert figures["plan_s"] > 0 and figures["submit_s"] > 0
    # The CSV link, then every download, after the last part ended; the page showed the link at its
    # next poll after the CSV was written.
    assert 0 < figures["finish_s"] <= figures["results_s"]
    assert figures["finish_s"] <= figures["finish_page_s"] <= figures["finish_s"] + POLL_EVERY + 3


def test_the_polling_load_polls_a_running_job_without_errors(tmp_path):
    timings, errors, running = poll_load.run(3000, tmp_path / "work", folder=tmp_path, viewers=10, seconds=8)

    assert running
    assert errors == []
    assert len(timings) >= 10 * 3  # every viewer polled all along, every 2 s
