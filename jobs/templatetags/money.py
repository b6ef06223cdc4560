"""Template filters for amounts of money, so that small batch costs do not show as $0.00."""

from decimal import Decimal

from django import template

register = template.Library()


@register.filter
def dollars(amount) -> str:
    if amount is None:
        return "–"
    amount = Decimal(amount)
    if amount and abs(amount) < Decimal("0.01"):
        return f"${amount:,.4f}"
    return f"${amount:,.2f}"
