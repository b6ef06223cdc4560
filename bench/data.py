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


# Words of several scripts, so that token counting meets what real multilingual data gives it.
MULTI_WORDS = WORDS + [
    "très",
    "déçu",
    "größe",
    "übergröße",
    "rápido",
    "envío",
    "очень",
    "хорошо",
    "качество",
    "とても",
    "良い",
    "商品",
    "配送",
    "很好",
    "质量",
    "ممتاز",
    "जल्दी",
    "🙂",
]


def multi_csv(rows: int = 1_000_000, folder: Path = ROOT) -> Path:
    """Shaped like the million-row run of the scale issue: a title, a review with line breaks inside
    the cell, a country, and two columns the prompt does not use; multilingual text. About 150 MB."""
    path = folder / f"multi-{rows}.csv"
    if path.exists():
        return path
    folder.mkdir(exist_ok=True)
    rng = random.Random(3)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "Title", "Review", "Country", "Stars"])
        for i in range(1, rows + 1):
            title = " ".join(rng.choices(MULTI_WORDS, k=rng.randint(2, 5)))
            lines = [
                " ".join(rng.choices(MULTI_WORDS, k=rng.randint(4, 12))) for _ in range(rng.randint(1, 3))
            ]
            writer.writerow(
                [i, title, "\n".join(lines), rng.choice(["FR", "DE", "JP", "CN", "BR"]), rng.randint(1, 5)]
            )
    tmp.rename(path)
    return path
