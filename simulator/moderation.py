"""Answers for /v1/moderations: the ModerationCreateResponse shape, deterministic.

A text is flagged in a category when it holds one of that category's trigger words, so that a test
can ask for a flag; every other score is a small number chosen from the text.
"""

import hashlib
import re

CATEGORIES = (
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/intent",
    "self-harm/instructions",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
)
# The categories OpenAI also scores images for; the others apply to text only.
IMAGE_CATEGORIES = {
    "self-harm",
    "self-harm/intent",
    "self-harm/instructions",
    "sexual",
    "violence",
    "violence/graphic",
}
TRIGGERS = {
    "harassment": {"idiot", "stupid", "loser"},
    "hate": {"hate"},
    "illicit": {"steal", "smuggle"},
    "self-harm": {"self-harm"},
    "violence": {"kill", "attack", "shoot", "hurt"},
}


def inputs(body: dict) -> list[tuple[str, bool]]:
    """(text, has an image) for each result the request asks for.

    A list of strings gets one result each; a list of content parts (text and image_url) is one
    input, as the API treats it.
    """
    value = body.get("input")
    if isinstance(value, str):
        return [(value, False)]
    value = list(value or [])
    if value and all(isinstance(part, dict) for part in value):
        text = " ".join(str(part.get("text", "")) for part in value if part.get("type") == "text")
        return [(text, any(part.get("type") == "image_url" for part in value))]
    return [(str(item), False) for item in value]


def texts(body: dict) -> list[str]:
    return [text for text, _ in inputs(body)]


def _result(text: str, image: bool) -> dict:
    words = set(re.findall(r"[a-z'-]+", text.lower()))
    digest = hashlib.sha256(text.encode()).digest()
    scores, flags = {}, {}
    for position, name in enumerate(CATEGORIES):
        triggered = bool(words & TRIGGERS.get(name, set()))
        scores[name] = round(0.9 + digest[position] / 2560 if triggered else digest[position] / 25_600, 6)
        flags[name] = triggered
    applied = {
        name: ["text", "image"] if image and name in IMAGE_CATEGORIES else ["text"] for name in CATEGORIES
    }
    return {
        "flagged": any(flags.values()),
        "categories": flags,
        "category_scores": scores,
        "category_applied_input_types": applied,
    }


def answer(body: dict, model: str, seed: bytes) -> dict:
    return {
        "id": f"modr-{seed.hex()[:24]}",
        "model": model,
        "results": [_result(text, image) for text, image in inputs(body)],
    }
