"""Token counts: the tokenizer, and prompts counted as the provider bills them, against published counts."""

import pickle
import unicodedata

import pytest

from jobs.formats import requestlines, tokens
from jobs.formats.requestfiles import CHAT, EMBEDDINGS, RequestBuilder, RequestSpec


def test_it_counts_o200k_tokens_like_tiktoken():
    # Known values from tiktoken's o200k_base: "hello world" is [24912, 2375].
    assert tokens.counter("gpt-4o-mini")("hello world") == 2
    assert tokens.encoding_name("gpt-4o-mini") == "o200k_base"
    assert tokens.encoding_name("gpt-5-mini") == "o200k_base"


def test_older_models_use_cl100k():
    assert tokens.encoding_name("gpt-4-turbo") == "cl100k_base"
    assert tokens.encoding_name("text-embedding-3-small") == "cl100k_base"
    # cl100k_base: "hello world" is [15339, 1917].
    assert tokens.counter("gpt-3.5-turbo")("hello world") == 2


def test_chat_prompts_add_message_overhead():
    # Each message: 3 framing tokens and its role ("user", "system": one token each); the reply: 3.
    count = tokens.prompt_counter("gpt-4o-mini", CHAT)
    assert count("", "hello world") == 2 + 4 + 3
    assert count("hello world", "hello world") == 2 + 4 + 3 + 2 + 4


# The example conversation of OpenAI's cookbook "How to count tokens with tiktoken", section 6
# (github.com/openai/openai-cookbook, examples/How_to_count_tokens_with_tiktoken.ipynb).
COOKBOOK_MESSAGES = [
    {
        "role": "system",
        "content": "You are a helpful, pattern-following assistant that translates corporate jargon "
        "into plain English.",
    },
    {"role": "system", "name": "example_user", "content": "New synergies will help drive top-line growth."},
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Things working well together will increase revenue.",
    },
    {
        "role": "system",
        "name": "example_user",
        "content": "Let's circle back when we have more bandwidth to touch base on opportunities "
        "for increased leverage.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Let's talk later when we're less busy about how to do better.",
    },
    {
        "role": "user",
        "content": "This late pivot means we don't have time to boil the ocean for the client deliverable.",
    },
]


@pytest.mark.parametrize(
    "model, published",
    [("gpt-3.5-turbo", 129), ("gpt-4-0613", 129), ("gpt-4", 129), ("gpt-4o", 124), ("gpt-4o-mini", 124)],
)
def test_chat_messages_count_as_many_tokens_as_the_api_reported_in_openais_cookbook(model, published):
    """OpenAI's cookbook "How to count tokens with tiktoken", section 6, prints for these five models the
    prompt tokens the API reported for its example conversation (system messages, some with a name):
    129 for gpt-3.5-turbo, gpt-4-0613 and gpt-4; 124 for gpt-4o and gpt-4o-mini.
    """
    assert tokens.chat_tokens(model, COOKBOOK_MESSAGES) == published


def test_one_user_message_counts_as_the_api_reported_it():
    """A notebook of a real call, github.com/ai-5050/facamp-2025-winter ("Check Token Usage"): gpt-4o-mini
    with the one user message "Who won the World Cup in 2022?" reported prompt_tokens=17. A row with no
    system prompt is exactly that request.
    """
    text = "Who won the World Cup in 2022?"
    assert tokens.chat_tokens("gpt-4o-mini", [{"role": "user", "content": text}]) == 17
    assert tokens.prompt_counter("gpt-4o-mini", CHAT)("", text) == 17


def test_a_row_counts_as_the_request_it_sends_with_and_without_instructions():
    """The plan's count of a (system, user) pair is the published recipe applied to the messages the
    request file holds for it."""
    builder = RequestBuilder(RequestSpec(CHAT, "gpt-4o-mini", "Answer in French.", "{{ Text }}"), ["Text"])
    for cells in (["Who won the World Cup in 2022?"], ["tiktoken is great!"]):
        messages = builder.body(cells)["messages"]
        assert tokens.prompt_counter("gpt-4o-mini", CHAT)(*builder.texts(cells)) == tokens.chat_tokens(
            "gpt-4o-mini", messages
        )


def test_an_embeddings_input_counts_its_text_only_as_the_api_reference_shows():
    """OpenAI's API reference, Embeddings > Create embeddings: the example input "The food was delicious
    and the waiter..." to text-embedding-ada-002 answers with usage prompt_tokens 8, total_tokens 8:
    an embeddings request has no message framing."""
    count = tokens.prompt_counter("text-embedding-ada-002", EMBEDDINGS)
    assert count("", "The food was delicious and the waiter...") == 8


@pytest.mark.parametrize(
    "text, cl100k, o200k",
    [("antidisestablishmentarianism", 6, 6), ("2 + 2 = 4", 7, 7), ("お誕生日おめでとう", 9, 8)],
)
def test_texts_count_as_the_cookbook_compares_the_encodings(text, cl100k, o200k):
    """OpenAI's cookbook "How to count tokens with tiktoken", section 5 "Comparing encodings": these
    strings are 6/6, 7/7 and 9/8 tokens in cl100k_base/o200k_base; and "tiktoken is great!" is 6 tokens
    in o200k_base (section 3). An embeddings input is its text's tokens alone."""
    assert tokens.prompt_counter("text-embedding-3-small", EMBEDDINGS)("", text) == cl100k
    assert tokens.counter("gpt-4")(text) == cl100k
    assert tokens.counter("gpt-4o")(text) == o200k
    assert tokens.counter("gpt-4o-mini")("tiktoken is great!") == 6


@pytest.mark.parametrize(
    "model, endpoint, system, user, published",
    [
        ("gpt-4o-mini", CHAT, "", "Who won the World Cup in 2022?", 17),
        ("text-embedding-ada-002", EMBEDDINGS, "", "The food was delicious and the waiter...", 8),
    ],
)
def test_a_prompt_counter_sent_to_a_pool_process_counts_for_its_model_and_endpoint(
    model, endpoint, system, user, published
):
    """The prepare pool sends the counter to each process: it travels as its model and endpoint (not a
    tokenizer of ~110 MB) and counts there as it does here, framing included or not, the published
    counts of the tests above."""
    count = tokens.prompt_counter(model, endpoint)
    assert count(system, user) == published
    sent = pickle.dumps(count)
    assert len(sent) < 300
    received = pickle.loads(sent)
    assert received(system, user) == published
    assert received("Answer in French.", user) == count("Answer in French.", user)


# Shortcuts: fixed words of a template counted once, not once a row.

SHAPES = [
    ("Title: {{ A }}\nReview: {{ B }}\nCountry: {{ C }}", ["Title", "Review", "Country"]),
    ("Classify this review, please: {{ A }}\nit's {{ B }}\nok/{{ C }}", ["Classify this review, please"]),
    ("Item 12: {{ A }}\r\nNotes (short): {{ B }}\nEnd.", ["Item 12", "End"]),
    ("{{ A }}\nQ: {{ B }}\nA{{ C }}\nWhy? it's\nok/ no\n's", ["Q", "Why"]),
    ("Résumé: {{ A }} and\nÉté; {{ B }}", ["Résumé", "Été"]),
    ("Note, say it : {{ A }} and then!. {{ B }}\n Why: {{ C }}", ["Note"]),
    ("{{ A }}{{ B }}", []),
    ("Just text, no cells.", ["Just text, no cells"]),
]


@pytest.mark.parametrize(("template", "taken"), SHAPES)
def test_a_template_takes_out_only_words_that_are_tokens_of_their_own(template, taken):
    builder = RequestBuilder(RequestSpec(CHAT, "gpt-4o-mini", "", template), ["A", "B", "C"])
    assert builder.taken == taken
    parts = builder.counted_parts or builder._user.parts
    counted = builder._user.render_joined([["x", "y", "z"]], "\x00", parts)[1]
    for word in taken:
        assert word not in counted


def _counts_by_shortcut(model, template, rows):
    """Each row's count from its text rendered short, the words taken out added back, and from its
    whole text."""
    builder = RequestBuilder(RequestSpec(CHAT, model, "", template), ["A", "B", "C"])
    whole, short = builder._user.render_joined(rows, "\x00", builder.counted_parts or builder._user.parts)
    counter = tokens.prompt_counter(model, CHAT)
    taken = builder.taken if builder.counted_parts else ()
    by_shortcut = counter.many("", requestlines.separate(short), taken=taken)
    return by_shortcut, counter.many("", requestlines.separate(whole))


@pytest.mark.parametrize("model", ["gpt-4o-mini", "gpt-4-turbo"])  # o200k_base and cl100k_base
def test_rows_count_the_same_by_shortcut_whatever_character_their_cells_start_and_end_with(model):
    # Every character of Unicode, where a cell meets the fixed text on either side (next to a letter,
    # a digit, itself), in templates with words taken out at the start and after line breaks.
    # (Not NUL, which joins a block's texts: a cell holding it is counted whole.)
    characters = [chr(code) for code in range(1, 0x110000) if not 0xD800 <= code <= 0xDFFF]
    rows = [[c, "a" + c, c + "1"] for c in characters]
    for template, _ in SHAPES[:3]:
        by_shortcut, whole = _counts_by_shortcut(model, template, rows)
        assert by_shortcut == whole, template


@pytest.mark.parametrize("model", ["gpt-4o-mini", "gpt-4-turbo"])
def test_every_letter_and_digit_of_unicode_ends_a_word_that_can_be_taken_out_of_a_template(model):
    # What Python calls a letter or digit, the tokenizer's pre-tokenizer must too (their Unicode tables
    # differ in age): a template's words are taken out where Python sees them.
    characters = [chr(code) for code in range(0x110000) if not 0xD800 <= code <= 0xDFFF]
    words = [c for c in characters if unicodedata.category(c)[0] in "LN"]
    counter, text = tokens.prompt_counter(model, EMBEDDINGS), tokens.counter(model)  # no framing
    for template, word in (("{}: {{{{ A }}}}", "7"), ("x {{{{ A }}}}\n{}: {{{{ B }}}}", "é")):
        builder = RequestBuilder(RequestSpec(EMBEDDINGS, model, "", template.format(word)), ["A", "B"])
        assert builder.taken == [word]
    cells = [" x", "\n", "'s", "/", "🙂"]
    for cell in cells:
        whole = counter.many("", [f"{w}: {cell}\n{w}{w}:{cell}" for w in words])
        short = counter.many("", [f": {cell}\n:{cell}" for _ in words])
        taken = [text(w) + text(w + w) for w in words]
        assert whole == [s + t for s, t in zip(short, taken, strict=True)], cell


@pytest.mark.parametrize("model", ["gpt-4o-mini", "gpt-4-turbo"])
def test_rows_count_the_same_by_shortcut_with_cells_that_hold_the_templates_own_words(model):
    # Cells of what splits differently: line breaks, spaces, apostrophes, slashes, marks, digits, the
    # template's own words and punctuation, in random runs (seeded, so a failure can be replayed).
    import random

    pieces = [
        "\n", "\r\n", "\r", " ", "  ", "\t", "'", "'s", "/", ":", ",", "!", "?", "-", "1", "123", "x", "X",
        "Review", "\nReview:", "Title", "é", "\u0301", "Ωμέγα", "日本", "🙂", "\u00a0", "\u2028", "'ll", "(",
    ]  # fmt: skip
    generator = random.Random(13)
    cell = lambda: "".join(generator.choices(pieces, k=generator.randint(0, 6)))  # noqa: E731
    rows = [[cell(), cell(), cell()] for _ in range(20_000)]
    for template, _ in SHAPES:
        by_shortcut, whole = _counts_by_shortcut(model, template, rows)
        assert by_shortcut == whole, template
