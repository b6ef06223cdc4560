"""Reconciling a million results into the results CSV: 20 batches, some failures, shuffled order.

Generates provider output and error files shaped like OpenAI's (2xx lines in the output
file, 4xx/5xx in the error file, order shuffled, one row missing), then times what the
app does with them: reconcile each batch by custom_id into its outcomes file, and merge
the outcomes with the original rows into results and failures CSVs. `reference` times the
obvious way on the same files instead, for `reconcile_reference_rows_per_s`.
"""

import csv
import json
import random
import sys
import tempfile
from pathlib import Path

import orjson

from bench.data import ROOT, reviews_csv
from bench.measure import peak_rss_mb, report, stopwatch

ROWS = 1_000_000
BATCHES = 20


CONTEXT_ERROR = {
    "message": "This model's maximum context length is 128000 tokens.",
    "type": "invalid_request_error",
    "param": "messages",
    "code": "context_length_exceeded",
}
ANSWER = {
    "id": "chatcmpl-x",
    "object": "chat.completion",
    "created": 1,
    "model": "gpt-4o-mini",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "positive"}, "finish_reason": "stop"}
    ],
    "usage": {"prompt_tokens": 31, "completion_tokens": 1, "total_tokens": 32},
}


def result_line(row: int, status: int, body: dict) -> bytes:
    response = {"status_code": status, "request_id": f"req_{row}", "body": body}
    return orjson.dumps(
        {"id": f"batch_req_{row}", "custom_id": f"row-{row}", "response": response, "error": None}
    )


def provider_files(directory: Path) -> None:
    """Each batch's output file (2xx) and error file (one row in 50 fails), shuffled, one row lost."""
    rng = random.Random(2)
    per_batch = ROWS // BATCHES
    for b in range(BATCHES):
        order = list(range(b * per_batch + 1, (b + 1) * per_batch + 1))
        rng.shuffle(order)
        with (
            (directory / f"out-{b}.jsonl").open("wb") as out,
            (directory / f"err-{b}.jsonl").open("wb") as err,
        ):
            for row in order[:-1]:
                if row % 50 == 0:
                    err.write(result_line(row, 400, {"error": CONTEXT_ERROR}) + b"\n")
                else:
                    out.write(result_line(row, 200, ANSWER) + b"\n")


def reference(dataset: Path, batches, results: Path) -> int:
    """The obvious way: every provider line json.loads-ed into one dict by custom_id, the rows read
    with csv.DictReader and joined with it, and written with csv.DictWriter. Returns the rows."""
    by_custom_id = {}
    for _expected, output, errors in batches:
        for path in (output, errors):
            with path.open(encoding="utf-8") as lines:
                for line in lines:
                    record = json.loads(line)
                    by_custom_id[record["custom_id"]] = record
    rows = 0
    with dataset.open(newline="", encoding="utf-8") as source, results.open("w", newline="") as out:
        reader = csv.DictReader(source)
        writer = csv.DictWriter(out, [*reader.fieldnames, "answer", "status", "error_code", "error"])
        writer.writeheader()
        for rows, row in enumerate(reader, start=1):
            record = by_custom_id.get(f"row-{rows}")
            if record is None:
                row.update(status="lost")
            elif record["response"]["status_code"] == 200:
                answer = record["response"]["body"]["choices"][0]["message"]["content"]
                row.update(answer=answer, status="succeeded")
            else:
                error = record["response"]["body"]["error"]
                row.update(status="failed", error_code=error["code"], error=error["message"])
            writer.writerow(row)
    return rows


def main(which: str = "ours") -> None:
    from jobs.formats import tables
    from jobs.formats.exports import latest_outcomes, write_results
    from jobs.formats.reconcile import read_outcomes, reconcile

    dataset = reviews_csv(ROWS)
    work = ROOT / "reconcile"
    if not (work / "err-19.jsonl").exists():
        work.mkdir(parents=True, exist_ok=True)
        provider_files(work)
    batches = [
        (
            list(range(b * (ROWS // BATCHES) + 1, (b + 1) * (ROWS // BATCHES) + 1)),
            work / f"out-{b}.jsonl",
            work / f"err-{b}.jsonl",
        )
        for b in range(BATCHES)
    ]
    if which == "reference":
        with tempfile.TemporaryDirectory() as tmp, stopwatch() as timing:
            rows = reference(dataset, batches, Path(tmp) / "results.csv")
        assert rows == ROWS, rows
        report("reconcile_reference_rows_per_s", ROWS / timing["seconds"], "rows/s")
        report("reconcile_reference_peak_rss_mb", peak_rss_mb(), "MB")
        return
    with tempfile.TemporaryDirectory() as tmp, stopwatch() as timing:
        outcome_paths = []
        for index, (expected, output, errors) in enumerate(batches):
            path = Path(tmp) / f"outcomes-{index}.jsonl"
            with output.open("rb") as out_file, errors.open("rb") as err_file, path.open("wb") as dest:
                reconcile(expected, [out_file, err_file], "/v1/chat/completions", dest)
            outcome_paths.append(path)
        streams = [p.open("rb") for p in outcome_paths]
        with (
            dataset.open("rb") as source,
            open(Path(tmp) / "results.csv", "w", newline="", encoding="utf-8") as res,
            open(Path(tmp) / "failures.csv", "w", newline="", encoding="utf-8") as fail,
        ):
            info = tables.inspect(source, dataset.name)
            source.seek(0)
            counts = write_results(
                info.columns,
                tables.iter_rows(source, info),
                latest_outcomes([[read_outcomes(s) for s in streams]]),
                res,
                fail,
            )
        for s in streams:
            s.close()
    assert counts.rows == ROWS, counts
    report("reconcile_rows_per_s", ROWS / timing["seconds"], "rows/s")
    report("reconcile_peak_rss_mb", peak_rss_mb(), "MB")


if __name__ == "__main__":
    main(*sys.argv[1:])
