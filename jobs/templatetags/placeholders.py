"""`{{ column|placeholder }}`: the placeholder that names a column, as the column buttons insert it."""

from django import template

from jobs.formats import prompts

register = template.Library()
register.filter("placeholder", prompts.placeholder)
