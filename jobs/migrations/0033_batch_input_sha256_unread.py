"""A part's SHA-256 was taken in the busiest loop of prepare (5% of its reading process) and read nowhere."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('jobs', '0032_reusable_answer_text_key_required'),
    ]

    operations = [
        # A default first, so that going back adds the column to the parts made meanwhile.
        migrations.AlterField(
            model_name='batch',
            name='input_sha256',
            field=models.CharField(default='', max_length=64),
        ),
        migrations.RemoveField(
            model_name='batch',
            name='input_sha256',
        ),
    ]
