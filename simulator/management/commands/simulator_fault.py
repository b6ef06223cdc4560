"""Arm a simulator fault from the shell.

Example: `manage.py simulator_fault batches.retrieve http_error status=429 retry_after=5 --times 3`
"""

import json

from django.core.management.base import BaseCommand, CommandError

from simulator import faults


class Command(BaseCommand):
    help = "Arm a fault in the simulator (see simulator/faults.py for the kinds), or --clear them all."

    def add_arguments(self, parser):
        parser.add_argument("op", nargs="?", help="e.g. batches.create, batches.retrieve, files.create, *")
        parser.add_argument("kind", nargs="?", help="e.g. http_error, delay, expire, stuck_finalizing")
        parser.add_argument(
            "params", nargs="*", help="name=value pairs; values are read as JSON when they can be"
        )
        parser.add_argument("--times", type=int, default=1, help="how many calls or batches it affects")
        parser.add_argument("--clear", action="store_true", help="remove every armed fault")

    def handle(self, *args, op=None, kind=None, params=(), times=1, clear=False, **options):
        if clear:
            faults.clear()
            self.stdout.write("All faults cleared.")
            return
        if not op or not kind:
            raise CommandError("Give an operation and a kind, or --clear.")
        values = {}
        for pair in params:
            name, _, raw = pair.partition("=")
            try:
                values[name] = json.loads(raw)
            except json.JSONDecodeError:
                values[name] = raw
        try:
            fault = faults.arm(op, kind, times=times, **values)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"Armed: {fault}")
