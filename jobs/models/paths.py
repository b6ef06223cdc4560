"""Where uploaded and generated files are stored: random names, so a user's file name is never a path."""

import uuid

from django.utils.deconstruct import deconstructible


@deconstructible(path="jobs.models._PrivatePath")
class _PrivatePath:
    """Stored files get random names; the user's file name is only display metadata."""

    def __init__(self, prefix: str):
        self.prefix = prefix

    def __call__(self, instance, filename: str) -> str:
        suffix = filename.rsplit(".", 1)[-1].lower() if "." in filename else "bin"
        return f"{self.prefix}/{uuid.uuid4().hex}.{suffix[:8]}"

    def __eq__(self, other) -> bool:
        return isinstance(other, _PrivatePath) and other.prefix == self.prefix
