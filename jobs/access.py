"""Who may see and change what: one rule, used by every view, fragment and download.

An admin (staff) sees and changes everything. A member sees what they own and what is
shared with one of their teams (Django groups), and changes only what they own.
Objects are looked up by their random code, and anything not visible answers 404, so
a stranger cannot even tell that an id exists.
"""

from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.shortcuts import get_object_or_404

from jobs.models import ProviderCredential


def visible(user, queryset: QuerySet) -> QuerySet:
    """Objects with an `owner` and a `team` that this user may see."""
    if user.is_staff:
        return queryset
    return queryset.filter(Q(owner=user) | Q(team__in=user.groups.all()))


def get_visible(user, queryset: QuerySet, **lookup):
    return get_object_or_404(visible(user, queryset), **lookup)


def get_changeable(user, queryset: QuerySet, **lookup):
    """Visible and this user's to change: a teammate may look, but only the owner or an admin acts."""
    found = get_visible(user, queryset, **lookup)
    if not (user.is_staff or found.owner_id == user.pk):
        raise PermissionDenied("Only the job's owner or an admin can do this.")
    return found


def usable_credentials(user) -> QuerySet:
    """Active provider keys this user may run jobs with: open to all, or to one of their teams.

    A key that failed its admin's last test is left out for members until a test passes again;
    admins still have it, to find out what is wrong.
    """
    credentials = ProviderCredential.objects.filter(is_active=True)
    if user.is_staff:
        return credentials
    credentials = credentials.exclude(last_test_ok=False)
    return credentials.filter(Q(teams=None) | Q(teams__in=user.groups.all())).distinct()
