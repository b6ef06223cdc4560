"""Write the job's and the batch's state diagrams (jobs.states) into the README's two Mermaid blocks.

Run it after changing a state machine; tests/test_layout.py fails while the README disagrees.
"""

import re
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from jobs import states

BLOCK = re.compile(r"```mermaid\n.*?```", re.S)


class Command(BaseCommand):
    help = "Redraw the README's state diagrams from jobs.states."

    def handle(self, *args, **options):
        readme = Path(settings.BASE_DIR) / "README.md"
        text = readme.read_text()
        diagrams = iter([states.JOB.mermaid(), states.BATCH.mermaid()])
        new, count = BLOCK.subn(lambda _: f"```mermaid\n{next(diagrams)}\n```", text, count=2)
        if count != 2:
            raise CommandError("The README needs two ```mermaid blocks, the job's then the batch's.")
        readme.write_text(new)
        self.stdout.write("README.md: state diagrams redrawn.")
