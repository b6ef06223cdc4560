"""Uploading a table and choosing how to read it; every message names the field at fault."""

from django import forms
from django.conf import settings
from django.template.defaultfilters import filesizeformat

from jobs.forms.common import bootstrap, team_field
from jobs.models import Dataset


def too_large(size: int) -> str:
    return (
        f"This file is {filesizeformat(size)}; the largest file accepted is "
        f"{filesizeformat(settings.UPLOAD_MAX_BYTES)}. Split it into smaller files and upload each."
    )


class UploadForm(forms.Form):
    file = forms.FileField(
        label="Your table",
        help_text="A CSV, TSV or Excel (.xlsx) file whose first row names the columns.",
        error_messages={
            "empty": "The file is empty. Export it again from your spreadsheet, then upload it.",
            "required": "Choose the file to upload.",
        },
    )

    def __init__(self, *args, user, refused_size: int | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.refused_size = refused_size  # stopped while it streamed (batchdash.uploads)
        if user.groups.exists():
            self.fields["team"] = team_field(user)

    def clean(self):
        data = super().clean()
        if self.refused_size:
            self.errors.pop("file", None)
            self.add_error("file", too_large(self.refused_size))
        return data

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > settings.UPLOAD_MAX_BYTES:
            raise forms.ValidationError(too_large(upload.size))
        if upload.size == 0:
            raise forms.ValidationError("The file is empty.")
        return upload


class ReadingForm(forms.Form):
    """How to read an uploaded text table, when the detected settings are not right."""

    ENCODINGS = [
        ("utf-8", "UTF-8 (most files)"),
        ("utf-8-sig", "UTF-8 with a byte-order mark"),
        ("utf-16", "UTF-16 (Excel's “Unicode text”)"),
        ("utf-16-le", "UTF-16, little-endian, without a byte-order mark"),
        ("utf-16-be", "UTF-16, big-endian, without a byte-order mark"),
        ("cp1252", "Windows Western (cp1252)"),
        ("latin-1", "Latin-1 (ISO-8859-1)"),
        ("cp1250", "Windows Central European (cp1250)"),
        ("mac_roman", "Mac Roman"),
        ("shift_jis", "Japanese (Shift JIS)"),
        ("gb18030", "Chinese (GB18030)"),
    ]
    DELIMITERS = [(",", "Comma ,"), (";", "Semicolon ;"), ("\t", "Tab"), ("|", "Pipe |")]

    encoding = forms.ChoiceField(label="Characters", choices=ENCODINGS)
    delimiter = forms.ChoiceField(label="Columns separated by", choices=DELIMITERS)
    long_rows = forms.ChoiceField(
        label="Rows with more cells than the header", choices=Dataset.long_rows.field.choices
    )
    short_rows = forms.ChoiceField(
        label="Rows with fewer cells than the header", choices=Dataset.short_rows.field.choices
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        encoding = self.initial.get("encoding")
        if encoding and encoding not in dict(self.ENCODINGS):
            self.fields["encoding"].choices = [(encoding, f"{encoding} (detected)"), *self.ENCODINGS]
        bootstrap(self)
