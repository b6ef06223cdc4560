"""The bad-rows choice becomes two: rows with too many cells, and rows with too few."""

from django.db import migrations, models


def stop_short_rows_where_bad_rows_stopped(apps, schema_editor):
    # "Stop" used to stop at short rows too; a file read that way keeps being read that way.
    apps.get_model("jobs", "Dataset").objects.filter(long_rows="stop").update(short_rows="stop")


def stop_bad_rows_where_short_rows_stopped(apps, schema_editor):
    datasets = apps.get_model("jobs", "Dataset").objects
    datasets.filter(long_rows="cut").update(long_rows="skip")  # the one choice there was no word for
    datasets.filter(short_rows="stop").update(long_rows="stop")


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0021_empty_rows_all_or_any"),
    ]

    operations = [
        migrations.RenameField(model_name="dataset", old_name="bad_rows", new_name="long_rows"),
        migrations.AlterField(
            model_name="dataset",
            name="long_rows",
            field=models.CharField(
                choices=[
                    ("skip", "Skip the row and go on"),
                    ("cut", "Keep the row's first cells, one per column, and leave out the rest"),
                    ("stop", "Stop reading, so that I can fix the file"),
                ],
                default="skip",
                max_length=4,
            ),
        ),
        migrations.AddField(
            model_name="dataset",
            name="short_rows",
            field=models.CharField(
                choices=[
                    ("pad", "Keep the row; its missing cells are empty"),
                    ("skip", "Skip the row and go on"),
                    ("stop", "Stop reading, so that I can fix the file"),
                ],
                default="pad",
                max_length=4,
            ),
        ),
        migrations.RunPython(stop_short_rows_where_bad_rows_stopped, stop_bad_rows_where_short_rows_stopped),
    ]
