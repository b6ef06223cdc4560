"""The models and endpoints the simulator serves: context window, output limit, kind, embedding size.

A plain table so that the app can reuse the ids (for suggestions and limits).
"""

MODELS: dict[str, dict] = {
    "gpt-4o-mini": {"kind": "chat", "context": 128_000, "max_output": 16_384},
    "gpt-4o": {"kind": "chat", "context": 128_000, "max_output": 16_384},
    "gpt-4.1": {"kind": "chat", "context": 1_047_576, "max_output": 32_768},
    "gpt-4.1-mini": {"kind": "chat", "context": 1_047_576, "max_output": 32_768},
    "gpt-4.1-nano": {"kind": "chat", "context": 1_047_576, "max_output": 32_768},
    "gpt-5": {"kind": "chat", "context": 400_000, "max_output": 128_000},
    "gpt-5-mini": {"kind": "chat", "context": 400_000, "max_output": 128_000},
    "gpt-5-nano": {"kind": "chat", "context": 400_000, "max_output": 128_000},
    "o4-mini": {"kind": "chat", "context": 200_000, "max_output": 100_000},
    "text-embedding-3-small": {"kind": "embedding", "context": 8_191, "dimensions": 1536},
    "text-embedding-3-large": {"kind": "embedding", "context": 8_191, "dimensions": 3072},
    "text-embedding-ada-002": {"kind": "embedding", "context": 8_191, "dimensions": 1536},
    # The legacy /v1/completions models.
    "gpt-3.5-turbo-instruct": {"kind": "completion", "context": 4_096, "max_output": 4_096},
    "davinci-002": {"kind": "completion", "context": 16_384, "max_output": 16_384},
    "babbage-002": {"kind": "completion", "context": 16_384, "max_output": 16_384},
    "omni-moderation-latest": {"kind": "moderation", "context": 32_768},
    "text-moderation-latest": {"kind": "moderation", "context": 32_768},
}

# What /v1/moderations uses when a request names no model, as OpenAI does.
DEFAULT_MODERATION_MODEL = "omni-moderation-latest"

ENDPOINT_KINDS = {
    "/v1/chat/completions": "chat",
    "/v1/responses": "chat",
    "/v1/embeddings": "embedding",
    "/v1/completions": "completion",
    "/v1/moderations": "moderation",
}
