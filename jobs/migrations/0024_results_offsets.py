"""The results file's index, for the results view."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0023_key_tests_and_people_audit"),
    ]

    operations = [
        migrations.AddField(
            model_name="job",
            name="results_offsets",
            field=models.JSONField(blank=True, default=list),
        ),
    ]
