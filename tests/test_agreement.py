"""How often models agree on a labelled field: each pair, each model with the majority, and the rows
where they differ, on answers known in advance."""

from jobs.formats.agreement import Rate, agreement


def test_each_pair_is_compared_on_the_rows_both_answered():
    figures = agreement(
        {
            "a": ["yes", "no", "yes", None, "no"],
            "b": ["yes", "yes", "yes", "no", "no"],
            "c": ["no", "no", "yes", "no", None],
        }
    )
    assert figures.pairs == {
        ("a", "b"): Rate(3, 4),
        ("a", "c"): Rate(2, 3),
        ("b", "c"): Rate(2, 4),
    }
    assert figures.pairs[("a", "b")].percent == 75


def test_each_model_is_compared_with_the_label_most_models_gave():
    figures = agreement(
        {
            "a": ["yes", "no", "yes", None, "no"],
            "b": ["yes", "yes", "yes", "no", "no"],
            "c": ["no", "no", "yes", "no", None],
        }
    )
    # Majorities: yes, no, yes, no (b and c), no (a and b).
    assert figures.with_majority == {"a": Rate(4, 4), "b": Rate(4, 5), "c": Rate(3, 4)}
    assert figures.disagreements == {0, 1}


def test_a_row_without_a_majority_counts_for_no_model():
    figures = agreement({"a": ["x", "y"], "b": ["x", "z"], "c": ["x", "w"]})
    assert figures.with_majority == {"a": Rate(1, 1), "b": Rate(1, 1), "c": Rate(1, 1)}
    assert figures.disagreements == {1}


def test_nothing_compared_has_no_percentage():
    figures = agreement({"a": [None], "b": ["x"]})
    assert figures.pairs[("a", "b")] == Rate(0, 0) and figures.pairs[("a", "b")].percent is None
    assert figures.disagreements == set()
