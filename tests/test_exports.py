import csv
import io

import pytest

from jobs.formats.exports import latest_outcomes, neutralize, write_results
from jobs.formats.reconcile import Outcome


@pytest.mark.parametrize("value", ["=1+2", "+cmd|' /C calc'!A0", "@SUM(1)", "-1+1", "\t=1", "\r=1", " =1"])
def test_formulas_are_neutralized(value):
    assert neutralize(value).startswith("'")


@pytest.mark.parametrize("value", ["", "plain text", "-5", "+3.5", "1e5", "-0,5", "héllo"])
def test_plain_values_are_kept(value):
    assert neutralize(value) == value


def test_latest_outcomes_keeps_the_last_attempt_and_counts_attempts():
    first = [Outcome(1, True, "a"), Outcome(2, False, code="lost"), Outcome(3, True, "c")]
    second = [Outcome(2, True, "b")]
    merged = [(o.row, o.answer, n) for o, n in latest_outcomes([[iter(first)], [iter(second)]])]
    assert merged == [(1, "a", 1), (2, "b", 2), (3, "c", 1)]


def test_results_keep_original_order_and_columns_and_list_failures_apart():
    rows = [(1, ["Ünï", "=cmd"]), (2, ["b", "x"]), (3, ["c", "y"])]
    outcomes = [
        (Outcome(1, True, "yes", input_tokens=5, output_tokens=1), 1),
        (Outcome(3, False, code="context_length_exceeded", message="too long"), 1),
    ]
    results, failures = io.StringIO(), io.StringIO()
    counts = write_results(["name", "formula"], rows, iter(outcomes), results, failures)
    assert (counts.rows, counts.succeeded, counts.failed, counts.not_sent) == (3, 1, 1, 1)
    assert results.getvalue().startswith("\ufeff")
    table = list(csv.reader(io.StringIO(results.getvalue()[1:])))
    assert table[0][:3] == ["name", "formula", "answer"]
    assert table[1][:4] == ["Ünï", "'=cmd", "yes", "succeeded"]
    assert table[2][3] == "not sent"
    assert table[3][3:6] == ["failed", "context_length_exceeded", "too long"]
    failed = list(csv.reader(io.StringIO(failures.getvalue()[1:])))
    assert failed[1][:5] == ["c", "y", "3", "context_length_exceeded", "too long"]
