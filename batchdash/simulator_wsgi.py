"""WSGI entry point of the simulator's own server: `make run` starts it on SIMULATOR_PORT.

The same settings and middleware as the app, but every request is resolved against the
simulator's URLs only (batchdash.simulator_urls, through Django's per-request `urlconf`), so that
generating a provider's answers never takes the app's web process: the app reaches the simulator
by URL, through the openai SDK, as it would reach OpenAI. (The app's own server still mounts it at
/simulator/v1 when SIMULATOR_ENABLED, for the tests' live server and one-process installs.)
"""

import os

import django
from django.core.handlers.wsgi import WSGIHandler

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "batchdash.settings")


class SimulatorOnly(WSGIHandler):
    def get_response(self, request):
        request.urlconf = "batchdash.simulator_urls"
        return super().get_response(request)


django.setup(set_prefix=False)
application = SimulatorOnly()
