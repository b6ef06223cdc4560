"""A part's SHA-256 was taken in the busiest loop of prepare (5% of its reading process) and read nowhere."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('jobs', '0032_reusable_answer_text_key_required'),
    ]

    operations = [
        migrations.RemoveField(
            model_name='batch',
            name='input_sha256',
        ),
    ]
