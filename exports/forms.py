from __future__ import annotations

from typing import Any

from django import forms

from exports.services.batches import filter_errors

BANDS = [("atomic", "Atomic"), ("composite", "Composite"), ("ambiguous", "Ambiguous")]
CONSENSUS = [
    ("any", "Any audited"),
    ("unanimous", "Every value 3 of 3"),
    ("no_adjudication", "No adjudicated value"),
    ("adjudicated", "With an adjudicated value"),
]


def _names(raw: str) -> list[str]:
    return sorted({part.strip() for part in raw.replace("\n", ",").split(",") if part.strip()})


class BatchForm(forms.Form):
    name = forms.CharField(max_length=200)
    model = forms.CharField(required=False, help_text="Comma-separated model names; empty for all.")
    scaffold = forms.CharField(required=False, help_text="Comma-separated scaffolds; empty for all.")
    band = forms.MultipleChoiceField(choices=BANDS, required=False, widget=forms.CheckboxSelectMultiple)
    tags = forms.CharField(required=False, help_text="Comma-separated capability tags; any of them.")
    consensus = forms.ChoiceField(choices=CONSENSUS, initial="any")
    reward_min = forms.FloatField(required=False)
    reward_max = forms.FloatField(required=False)
    imported_from = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    imported_until = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def filters(self) -> dict[str, Any]:
        data = self.cleaned_data
        out: dict[str, Any] = {"consensus": data["consensus"]}
        for key in ("model", "scaffold", "tags"):
            if names := _names(data.get(key) or ""):
                out[key] = names
        if data.get("band"):
            out["band"] = sorted(data["band"])
        for key in ("reward_min", "reward_max"):
            if data.get(key) is not None:
                out[key] = data[key]
        for key in ("imported_from", "imported_until"):
            if data.get(key):
                out[key] = data[key].isoformat()
        return out

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if not self.errors:
            for message in filter_errors(self.filters()):
                self.add_error(None, message)
        return cleaned
