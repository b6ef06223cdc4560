"""How often models agree on a labelled field of their answers, row by row: between each pair of
models, and each model with the majority of them, and which rows they differ on. Labels in, counts out.
"""

from collections import Counter
from dataclasses import dataclass
from itertools import combinations


@dataclass(frozen=True)
class Rate:
    agree: int
    compared: int

    @property
    def percent(self) -> float | None:
        return 100 * self.agree / self.compared if self.compared else None


@dataclass(frozen=True)
class Agreement:
    pairs: dict[tuple[str, str], Rate]
    with_majority: dict[str, Rate]
    disagreements: set[int]  # indexes of the rows where the models that answered gave different labels


def agreement(labels: dict[str, list[str | None]]) -> Agreement:
    """`labels` maps each model to its label for each row, None where it gave none (all lists as long).

    A pair is compared on the rows both answered. A row's majority is the label more than half of the
    models that answered it gave; a row without one counts for no model, rather than for a coin toss.
    """
    models = list(labels)
    pairs = {}
    for a, b in combinations(models, 2):
        both = [(x, y) for x, y in zip(labels[a], labels[b], strict=True) if x is not None and y is not None]
        pairs[(a, b)] = Rate(sum(x == y for x, y in both), len(both))
    agree: Counter[str] = Counter()
    compared: Counter[str] = Counter()
    disagreements = set()
    for index in range(len(labels[models[0]]) if models else 0):
        given = {m: labels[m][index] for m in models if labels[m][index] is not None}
        counts = Counter(given.values())
        if len(counts) > 1:
            disagreements.add(index)
        if not counts:
            continue
        top, votes = counts.most_common(1)[0]
        if votes * 2 <= len(given):
            continue
        for model, label in given.items():
            compared[model] += 1
            agree[model] += label == top
    majority = {m: Rate(agree[m], compared[m]) for m in models}
    return Agreement(pairs=pairs, with_majority=majority, disagreements=disagreements)
