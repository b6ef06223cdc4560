"""What every page's frame shows: whether answers are made up by the built-in simulator, and for
admins how many jobs wait for their approval."""

from jobs import access
from jobs.models import Job, ProviderCredential


def frame(request) -> dict:
    user = getattr(request, "user", None)
    # htmx fragments are drawn without the frame: polling pays for none of this.
    if user is None or not user.is_authenticated or getattr(request, "htmx", False):
        return {}
    kinds = set(access.usable_credentials(user).values_list("kind", flat=True))
    # When the simulator is the only provider this person can use, every answer they see is made up.
    context = {"simulated": kinds == {ProviderCredential.Kind.SIMULATOR}}
    if user.is_staff:
        context["approvals_waiting"] = Job.objects.filter(status=Job.Status.AWAITING_APPROVAL).count()
    return context
