"""The URLs of the simulator's own server (batchdash.simulator_wsgi): the simulator and nothing else."""

from django.http import HttpResponseNotFound
from django.urls import include, path

urlpatterns = [path("simulator/v1/", include("simulator.urls"))]


def handler404(request, exception):
    """Not the app's HTML page: none of the app is served here."""
    return HttpResponseNotFound(
        "Only the simulator is served here, under /simulator/v1/.", content_type="text/plain"
    )
