"""Pure file formats: plain data and streams in, plain data and streams out; no Django, no database,
no network (import-linter holds this). Reading tables (`tables`), prompts (`prompts`), request files
(`requestfiles`), token counting (`tokens`), structured output (`schema`), reconciling the provider's
files into one outcome per row (`reconcile`), the files people download (`exports`), and typed text
made one line (`text`).
"""
