"""Batchdash's tables, by what they hold: what admins set up (keys), what users bring (inputs), the
pipeline's work (work) and the audit log. Pages read only these tables, never the provider.
"""

from jobs.models.audit import AuditEvent
from jobs.models.inputs import Dataset, PromptSettings, PromptTemplate
from jobs.models.keys import KeyPace, ModelPrice, ProviderCredential, TeamBudget
from jobs.models.paths import _PrivatePath
from jobs.models.work import Batch, Job, PilotRun, ReusableAnswer, RowFailure

__all__ = [
    "AuditEvent",
    "Batch",
    "Dataset",
    "Job",
    "KeyPace",
    "ModelPrice",
    "PilotRun",
    "PromptSettings",
    "PromptTemplate",
    "ProviderCredential",
    "ReusableAnswer",
    "RowFailure",
    "TeamBudget",
    "_PrivatePath",
]
