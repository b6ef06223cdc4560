"""The provider boundary: the one client that talks to OpenAI-compatible APIs (`client`, the only
importer of the openai SDK) and the encryption of stored keys (`crypto`).
"""
