"""What tokens cost: the admins' price table applied to a model's input and output tokens."""

import datetime
from dataclasses import dataclass
from decimal import Decimal

from django.utils import timezone

from jobs.models import ModelPrice

_MILLION = Decimal(1_000_000)
# Providers change their prices a few times a year: prices checked longer ago are flagged.
STALE_AFTER_DAYS = 90


def is_stale(as_of: datetime.date | None) -> bool:
    """Whether prices checked on this day are too old to trust without a look."""
    return as_of is not None and (timezone.localdate() - as_of).days > STALE_AFTER_DAYS


@dataclass(frozen=True)
class Cost:
    batch: Decimal
    synchronous: Decimal

    @property
    def saving(self) -> Decimal:
        return self.synchronous - self.batch


def cost(price: ModelPrice | None, input_tokens: int, output_tokens: int) -> Cost | None:
    """The cost in dollars through the Batch API and through the synchronous API; None without a price."""
    if price is None:
        return None
    synchronous = (
        price.input_per_million * input_tokens + price.output_per_million * output_tokens
    ) / _MILLION
    return Cost(batch=synchronous * price.batch_discount, synchronous=synchronous)


def prices() -> dict[str, ModelPrice]:
    return {p.model: p for p in ModelPrice.objects.all()}


def per_token(price: ModelPrice | None) -> tuple[float, float] | None:
    """Dollars per input and per output token through the Batch API, for per-row figures."""
    if price is None:
        return None
    rate = price.batch_discount / _MILLION
    return float(price.input_per_million * rate), float(price.output_per_million * rate)


def actual(job, prices: dict[str, ModelPrice]) -> Cost | None:
    """What a job has cost so far, from the usage the provider reported. `batch` is what was billed:
    the Batch API's price, but the normal price for the rows Run now answered.
    """
    price = prices.get(job.model)
    total = cost(price, job.reported_input_tokens, job.output_tokens)
    now = cost(price, job.now_input_tokens, job.now_output_tokens)
    if total is None or not (job.now_input_tokens or job.now_output_tokens):
        return total
    return Cost(batch=total.batch + now.saving, synchronous=total.synchronous)
