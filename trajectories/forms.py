from typing import Any

from django import forms
from django.core.files.uploadedfile import UploadedFile

from trajectories.formats import IMPORTERS


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    widget = MultipleFileInput

    def clean(self, data: Any, initial: Any = None) -> list[UploadedFile]:
        single = super().clean
        if isinstance(data, list | tuple):
            return [single(item, initial) for item in data]
        return [single(data, initial)]


def _format_choices() -> list[tuple[str, str]]:
    return [("", "Detect from the file"), *((name, imp.label) for name, imp in sorted(IMPORTERS.items()))]


class UploadForm(forms.Form):
    upload = MultipleFileField(help_text="JSONL or JSON, one or many files; gzip-compressed files are read too.")
    format = forms.ChoiceField(choices=_format_choices, required=False)
    model = forms.CharField(max_length=200, required=False, help_text="For files that do not name the model.")
    scaffold = forms.CharField(max_length=100, required=False, help_text="For files that do not name the scaffold.")
