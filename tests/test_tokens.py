from jobs.formats import tokens


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
    count = tokens.prompt_counter("gpt-4o-mini")
    assert count("", "hello world") == 2 + 6
    assert count("hello world", "hello world") == 2 + 6 + 2 + 3
