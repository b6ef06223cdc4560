"""Token counts: the tokenizer, and prompts counted as the provider bills them, against published counts."""

import pickle

import pytest

from jobs.formats import tokens
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
