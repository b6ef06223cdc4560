"""Generated inputs for the benchmarks, made once into bench-data/ and reused."""

import csv
import random
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "bench-data"
WORDS = [
    "the",
    "a",
    "great",
    "product",
    "shoes",
    "fit",
    "comfy",
    "small",
    "large",
    "colour",
    "price",
    "quality",
    "delivery",
    "fast",
    "slow",
    "broke",
    "loved",
    "hated",
    "would",
    "buy",
    "again",
    "never",
    "okay",
    "fine",
    "good",
    "bad",
    "soft",
    "hard",
    "cheap",
    "expensive",
    "return",
    "gift",
    "size",
]


def reviews_csv(rows: int = 1_000_000) -> Path:
    """A 5-column CSV of product reviews, about 75 MB for a million rows."""
    path = ROOT / f"reviews-{rows}.csv"
    if path.exists():
        return path
    ROOT.mkdir(exist_ok=True)
    rng = random.Random(1)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "Review Text", "Stars", "Country", "Product"])
        for i in range(1, rows + 1):
            text = " ".join(rng.choices(WORDS, k=rng.randint(5, 14)))
            writer.writerow(
                [
                    i,
                    text,
                    rng.randint(1, 5),
                    rng.choice(["FR", "DE", "US", "ES", "GB"]),
                    f"SKU-{rng.randint(1, 9999):05d}",
                ]
            )
    tmp.rename(path)
    return path
