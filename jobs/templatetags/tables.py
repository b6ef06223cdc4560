"""`{% for column, cell in columns|beside:cells %}`: each cell with its column's name.

A table shown as cards on a phone labels each cell with its column (see .table-stack).
"""

from django import template

register = template.Library()


@register.filter
def beside(columns, cells):
    return zip(columns, cells, strict=False)
