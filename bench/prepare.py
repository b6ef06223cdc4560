"""The prepare step on a million rows: read, render, count tokens, write request files.

Beside it, the reference the issue names: the common tutorial's csv.DictReader, one dict
per row and json.dumps, building the same request lines and counting no tokens.
Run as `python -m bench.prepare ours|reference`, each in its own process so that peak
memory is the step's own.
"""

import csv
import json
import sys
import tempfile
from pathlib import Path

from bench.data import reviews_csv
from bench.measure import peak_rss_mb, report, stopwatch

PROMPT = "Classify the sentiment of this review as positive, negative or neutral: {{ Review Text }}"
MODEL = "gpt-4o-mini"


def ours(path: Path, out: Path) -> int:
    from jobs.formats import tables, tokens
    from jobs.formats.requestfiles import CHAT, RequestBuilder, RequestSpec, write_batch_files

    with path.open("rb") as stream:
        info = tables.inspect(stream, path.name)
        stream.seek(0)
        builder = RequestBuilder(RequestSpec(CHAT, MODEL, user_prompt=PROMPT), info.columns)
        parts = write_batch_files(
            tables.iter_rows(stream, info),
            builder,
            out,
            max_requests=50_000,
            max_bytes=200_000_000,
            count_tokens=tokens.prompt_counter(MODEL),
            # As the app prepares by default: empty rows and rows over the context window left out.
            skip=lambda row, code, prompt_tokens: None,
            skip_empty="all",
            max_prompt_tokens=128_000,
        )
        return sum(part.request_count for part in parts)


def reference(path: Path, out: Path) -> int:
    count = 0
    with path.open(newline="", encoding="utf-8") as f, (out / "reference.jsonl").open("w") as lines:
        for row in csv.DictReader(f):
            count += 1
            body = {
                "model": MODEL,
                "messages": [
                    {"role": "user", "content": PROMPT.replace("{{ Review Text }}", row["Review Text"])}
                ],
            }
            lines.write(
                json.dumps(
                    {
                        "custom_id": f"row-{count}",
                        "method": "POST",
                        "url": "/v1/chat/completions",
                        "body": body,
                    }
                )
                + "\n"
            )
    return count


def main(which: str) -> None:
    path = reviews_csv()
    with tempfile.TemporaryDirectory() as tmp, stopwatch() as timing:
        rows = (ours if which == "ours" else reference)(path, Path(tmp))
    if which == "ours":
        report("prepare_rows_per_s", rows / timing["seconds"], "rows/s")
        report("prepare_peak_rss_mb", peak_rss_mb(), "MB")
    else:
        report("prepare_reference_rows_per_s", rows / timing["seconds"], "rows/s")


if __name__ == "__main__":
    main(sys.argv[1])
