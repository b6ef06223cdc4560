"""Every index entry has its text key (0031 filled it or dropped the entry), read with its job's."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0031_reusable_answer_text_key"),
    ]

    operations = [
        migrations.AlterField(
            model_name="reusableanswer",
            name="text_key",
            field=models.PositiveBigIntegerField(),
        ),
        migrations.AlterField(
            model_name="reusableanswer",
            name="job",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="reusable_answers",
                to="jobs.job",
            ),
        ),
        migrations.AddIndex(
            model_name="reusableanswer",
            index=models.Index(fields=["job", "text_key"], name="reusable_answer_job_key"),
        ),
    ]
