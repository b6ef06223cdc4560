"""The background row count on a million rows, with and without learning which columns could be
the row ID (jobs.formats.uniques), each in its own process so that peak memory is the pass's own.

The reviews table has an `id` column unique to the end and a column of short texts also unique,
so the memory bound is met and the texts let go: the case the bound is for. Run as
`python -m bench.count ids|plain`; `count_ids_time_ratio` (printed by the `ids` case, which
measures the plain pass too, in the same process, first) is the cost of the checks.
"""

import sys

from bench.data import reviews_csv
from bench.measure import peak_rss_mb, report, stopwatch


def count(path, with_ids: bool) -> tuple[int, dict]:
    from jobs.formats import tables, uniques

    with path.open("rb") as stream:
        info = tables.inspect(stream, path.name)
        row_ids = uniques.RowIds(info.columns) if with_ids else None
        result = tables.count_rows(stream, info, row_ids=row_ids)
    return result.rows, row_ids.results() if row_ids else {}


def main(which: str) -> None:
    path = reviews_csv()
    if which == "plain":
        with stopwatch() as plain:
            rows, _ = count(path, with_ids=False)
        report("count_plain_rows_per_s", rows / plain["seconds"], "rows/s")
        report("count_plain_peak_rss_mb", peak_rss_mb(), "MB")
        return
    with stopwatch() as plain:
        count(path, with_ids=False)
    with stopwatch() as timing:
        rows, checks = count(path, with_ids=True)
    report("count_ids_rows_per_s", rows / timing["seconds"], "rows/s")
    report("count_ids_time_ratio", timing["seconds"] / plain["seconds"], "x", digits=2)
    report("count_ids_peak_rss_mb", peak_rss_mb(), "MB")
    # Which columns were followed to the end: the id column must be.
    report("count_ids_id_column_checked_rows", rows if checks["id"].get("unique") else 0, "rows")


if __name__ == "__main__":
    main(*sys.argv[1:])
