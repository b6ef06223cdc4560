"""Error pages and error emails that never show a provider key.

Django hides settings with secret-sounding names and the variables of functions marked
with sensitive_variables. A crash deep inside the OpenAI SDK has frames of its own,
though, with the key in a parameter called `api_key`. This filter also hides, in every
frame, variables whose names sound secret, and redacts anything shaped like a key in
the others.
"""

from django.views.debug import SafeExceptionReporterFilter

from jobs.providers.client import scrub


class SecretHidingFilter(SafeExceptionReporterFilter):
    def get_traceback_frame_variables(self, request, tb_frame):
        variables = super().get_traceback_frame_variables(request, tb_frame)
        cleaned = []
        for name, value in variables:
            if self.hidden_settings.search(name):
                value = self.cleansed_substitute
            else:
                text = value if isinstance(value, str) else repr(value)
                if scrub(text) != text:
                    value = scrub(text)
            cleaned.append((name, value))
        return cleaned
