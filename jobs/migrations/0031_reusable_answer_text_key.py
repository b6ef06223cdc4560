"""Each index entry keeps the key of its request's texts, which prepare loads in place of the fingerprints.

Entries made before it get theirs from the request line they answer, read from their job's first
request files (kept while the entries are: both go at the raw files' retention). An entry whose line
cannot be read, or no longer has its fingerprint, could never be found again and is dropped.
"""

import orjson
from django.db import migrations, models

from jobs import rawfiles
from jobs.formats.requestfiles import RequestBuilder, fingerprint
from jobs.formats.requestreads import line_row
from jobs.pipeline.common import request_spec


def fill_text_keys(apps, schema_editor):
    ReusableAnswer = apps.get_model("jobs", "ReusableAnswer")
    Batch = apps.get_model("jobs", "Batch")
    job_ids = ReusableAnswer.objects.values_list("job_id", flat=True).distinct().order_by()
    batches = Batch.objects.filter(job_id__in=job_ids, attempt=1).exclude(input_file="").select_related("job__dataset")
    for batch in batches:
        builder = RequestBuilder(request_spec(batch.job), batch.job.dataset.columns)
        # A part at a time: at most 50,000 entries in memory.
        rows = (batch.first_row, batch.last_row)
        entries = ReusableAnswer.objects.filter(job_id=batch.job_id, row__range=rows).only("row", "fingerprint")
        by_row = {entry.row: entry for entry in entries}
        filled = []
        try:
            with rawfiles.lines(batch.input_file) as fh:
                for line in fh:
                    entry = by_row.get(line_row(line))
                    request = orjson.loads(line) if entry is not None else None
                    if request and fingerprint(request["url"], request["body"]) == entry.fingerprint:
                        entry.text_key = builder.text_key(request["body"])
                        filled.append(entry)
        except OSError:  # the file is gone: its entries go below
            continue
        ReusableAnswer.objects.bulk_update(filled, ["text_key"], batch_size=2000)
    ReusableAnswer.objects.filter(text_key__isnull=True).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0030_run_now"),
    ]

    operations = [
        migrations.AddField(
            model_name="reusableanswer",
            name="text_key",
            field=models.PositiveBigIntegerField(null=True),
        ),
        migrations.RunPython(fill_text_keys, migrations.RunPython.noop),
    ]
