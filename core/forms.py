from typing import Any

import orjson
from django import forms
from django.contrib.auth.models import User

from core.models import Project, ProjectKind, Role
from core.services import EDITABLE


class MemberForm(forms.Form):
    username = forms.CharField(max_length=150)
    role = forms.ChoiceField(choices=Role.choices)

    def clean_username(self) -> User:
        username = self.cleaned_data["username"].strip()
        user = User.objects.filter(username=username, is_active=True).first()
        if user is None:
            raise forms.ValidationError(f"No active user named {username!r}.")
        return user


class ProjectCreateForm(forms.Form):
    name = forms.CharField(max_length=200)
    kind = forms.ChoiceField(choices=ProjectKind.choices)
    slug = forms.SlugField(max_length=80, required=False, help_text="Optional; made from the name when empty.")
    description = forms.CharField(required=False, max_length=20_000, widget=forms.Textarea(attrs={"rows": 3}))


class ProjectSettingsForm(forms.Form):
    """The settings as typed; their ranges and the JSON documents' schema are checked by project_update, whose
    errors the view puts on these fields."""

    name = forms.CharField(max_length=200)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))
    guidelines = forms.CharField(required=False, strip=False, widget=forms.Textarea(attrs={"rows": 12, "cols": 64}))
    overlap = forms.IntegerField(help_text="Annotators per trajectory, 1 to 9.")
    agreement_target = forms.FloatField(help_text="Cohen's κ the project aims at, −1 to 1.")
    calibration_threshold = forms.FloatField(help_text="Below this κ an annotator is sent to calibration, −1 to 1.")
    gold_rate = forms.FloatField(help_text="Share of claims that are gold items, 0 to 1.")
    review_rate = forms.FloatField(help_text="Share of settled trajectories sampled for review, 0 to 1.")
    rubric_axes = forms.CharField(widget=forms.Textarea(attrs={"rows": 16, "cols": 64, "class": "mono"}))
    failure_taxonomy = forms.CharField(widget=forms.Textarea(attrs={"rows": 16, "cols": 64, "class": "mono"}))

    @staticmethod
    def initial_for(project: Project) -> dict[str, Any]:
        initial = {field: getattr(project, field) for field in EDITABLE}
        for field in ("rubric_axes", "failure_taxonomy"):
            initial[field] = orjson.dumps(initial[field], option=orjson.OPT_INDENT_2).decode()
        return initial

    def _json(self, field: str) -> Any:
        try:
            return orjson.loads(self.cleaned_data[field])
        except orjson.JSONDecodeError as exc:
            raise forms.ValidationError(f"not JSON: line {exc.lineno}, column {exc.colno}: {exc.msg}") from exc

    def clean_description(self) -> str:
        return str(self.cleaned_data["description"]).replace("\r\n", "\n")

    def clean_guidelines(self) -> str:  # browsers send a textarea's lines ended by CRLF
        return str(self.cleaned_data["guidelines"]).replace("\r\n", "\n")

    def clean_rubric_axes(self) -> Any:
        return self._json("rubric_axes")

    def clean_failure_taxonomy(self) -> Any:
        return self._json("failure_taxonomy")

    def changes(self, project: Project) -> dict[str, Any]:
        """The fields whose value differs from the project's (what project_update is asked to change)."""
        return {f: v for f, v in self.cleaned_data.items() if getattr(project, f) != v}
