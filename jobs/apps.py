from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "jobs"
    verbose_name = "Batch jobs"

    def ready(self):
        # Registers the project's deployment checks (manage.py check --deploy).
        from jobs import checks  # noqa: F401
