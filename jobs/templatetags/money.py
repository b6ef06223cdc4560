"""Template filters for amounts of money, so that small batch costs do not show as $0.00, and for
prices checked too long ago."""

from decimal import ROUND_HALF_UP, Decimal

from django import template

from jobs.money import pricing

register = template.Library()


@register.filter
def dollars(amount) -> str:
    if amount is None:
        return "–"
    amount = Decimal(amount)
    if 0 < amount < Decimal("0.0001"):
        return "less than $0.0001"
    # Rounded half up, as people do by hand (Decimal's default rounds half to even).
    places = Decimal("0.0001") if amount and abs(amount) < Decimal("0.01") else Decimal("0.01")
    return f"${amount.quantize(places, rounding=ROUND_HALF_UP):,}"


@register.filter
def at_most(amount) -> str:
    """An upper bound in words: "at most $0.12", or "less than $0.0001" (never "at most less than")."""
    text = dollars(amount)
    return text if text.startswith(("less", "–")) else f"at most {text}"


@register.inclusion_tag("jobs/_stale_prices.html")
def stale_flag(as_of):
    """A warning badge when prices were checked more than STALE_AFTER_DAYS ago; nothing otherwise."""
    return {"as_of": as_of, "stale": pricing.is_stale(as_of), "days": pricing.STALE_AFTER_DAYS}
