"""Identical requests are answered once: the fingerprint index, the key's reuse scope, and what a job reused."""

import django.db.models.deletion
import jobs.models
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('jobs', '0025_other_formats_after_the_csv'),
    ]

    operations = [
        migrations.AddField(
            model_name='job',
            name='copies_file',
            field=models.FileField(blank=True, upload_to=jobs.models._PrivatePath('results')),
        ),
        migrations.AddField(
            model_name='job',
            name='request_settings',
            field=models.CharField(blank=True, db_index=True, max_length=32),
        ),
        migrations.AddField(
            model_name='job',
            name='reuse_answers',
            field=models.BooleanField(default=False),
        ),
        migrations.AddField(
            model_name='job',
            name='reuse_saving',
            field=models.DecimalField(decimal_places=6, default=0, max_digits=14),
        ),
        migrations.AddField(
            model_name='job',
            name='reused_file',
            field=models.FileField(blank=True, upload_to=jobs.models._PrivatePath('results')),
        ),
        migrations.AddField(
            model_name='job',
            name='reused_from',
            field=models.JSONField(blank=True, default=list),
        ),
        migrations.AddField(
            model_name='job',
            name='rows_copied',
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='job',
            name='rows_reused',
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='job',
            name='send_again',
            field=models.BooleanField(default=False),
        ),
        migrations.AddField(
            model_name='providercredential',
            name='reuse_scope',
            field=models.CharField(choices=[('team', 'Within the team: answers from jobs the owner can see'), ('organisation', 'Organisation-wide: answers from any job'), ('off', 'Off: every request is sent')], default='team', help_text="A request identical to one already answered takes that answer instead of being sent (at temperature 0, for embeddings, and when the job's owner asks for it).", max_length=12, verbose_name='Reuse of earlier answers'),
        ),
        migrations.CreateModel(
            name='ReusableAnswer',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('fingerprint', models.CharField(db_index=True, max_length=32)),
                ('row', models.PositiveIntegerField()),
                ('answer', models.TextField()),
                ('input_tokens', models.PositiveIntegerField(default=0)),
                ('output_tokens', models.PositiveIntegerField(default=0)),
                ('job', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='reusable_answers', to='jobs.job')),
            ],
        ),
    ]
