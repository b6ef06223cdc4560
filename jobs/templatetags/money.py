"""Template filters for amounts of money, so that small batch costs do not show as $0.00."""

from decimal import ROUND_HALF_UP, Decimal

from django import template

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
