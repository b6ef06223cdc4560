"""The results file's index, for the results view."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0022_long_and_short_rows"),
    ]

    operations = [
        migrations.AddField(
            model_name="job",
            name="results_offsets",
            field=models.JSONField(blank=True, default=list),
        ),
    ]
