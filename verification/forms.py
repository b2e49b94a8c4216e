"""The replay configuration form. The service (`replay_config_set`) owns the rules; this form only
parses text into the values the service takes (JSON for the routes, one item a line for lists)."""

from __future__ import annotations

from typing import Any

import orjson
from django import forms
from django.core.exceptions import ValidationError

from verification.environments import ENVIRONMENTS
from verification.models import ReplayConfig
from verification.services import CONFIG_FIELDS


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def environment_choices(current: str = "") -> list[tuple[str, str]]:
    choices = [("", "none"), *((name, name) for name in sorted(ENVIRONMENTS))]
    if current and current not in ENVIRONMENTS:
        choices.append((current, f"{current} (not registered)"))
    return choices


class ReplayConfigForm(forms.Form):
    # A plain CharField behind a select: an unknown name reaches the service, which says what is known.
    environment = forms.CharField(
        required=False,
        widget=forms.Select(),
        label="Sandbox environment",
        help_text="Calls are replayed on this simulated environment, from the run's seed.",
    )
    seed_key = forms.CharField(
        max_length=100, label="Seed key", help_text="The run metadata key that holds the environment seed."
    )
    default_seed = forms.IntegerField(
        required=False, label="Default seed", help_text="Used when a run's metadata has no seed; empty: no replay."
    )
    use_mock_store = forms.BooleanField(
        required=False, label="Use the mock store", help_text="Replay read-only calls against other runs' recordings."
    )
    http_base_url = forms.CharField(
        required=False,
        max_length=200,
        widget=forms.URLInput(attrs={"placeholder": "https://sandbox.example/api"}),
        label="HTTP sandbox URL",
        help_text="Empty: no HTTP replay (never on by default).",
    )
    http_routes = forms.CharField(
        required=False,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 6, "class": "mono", "spellcheck": "false"}),
        label="HTTP routes (JSON)",
        help_text='tool → {"method": …, "path": …}; a tool without a route is POST /<tool>.',
    )
    http_timeout_s = forms.FloatField(max_value=60, label="HTTP timeout (s)", help_text="More than 0, at most 60.")
    http_retries = forms.IntegerField(min_value=0, max_value=5, label="HTTP retries", help_text="0 to 5.")
    check_http_status = forms.BooleanField(
        required=False, label="Flag non-2xx answers", help_text="A replayed call that does not answer 2xx is a finding."
    )
    volatile_keys = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "class": "mono", "spellcheck": "false"}),
        label="Volatile keys",
        help_text="One key or JSON pointer a line; ignored when observations are compared.",
    )
    sql_tools = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "class": "mono", "spellcheck": "false"}),
        label="SQL tools",
        help_text="One tool name a line; their result rows are compared with the gold query's.",
    )

    def __init__(self, *args: Any, read_only: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        current = str(self.initial.get("environment") or "")
        select = self.fields["environment"].widget
        assert isinstance(select, forms.Select)
        select.choices = environment_choices(current)
        if read_only:
            for f in self.fields.values():
                f.disabled = True

    def clean_http_routes(self) -> Any:
        text = self.cleaned_data["http_routes"]
        if not text.strip():
            return {}
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise ValidationError(f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None

    def clean_http_timeout_s(self) -> float:
        value = self.cleaned_data["http_timeout_s"]
        if value <= 0:
            raise ValidationError("must be more than 0 seconds")
        return value

    def clean_volatile_keys(self) -> list[str]:
        return _lines(self.cleaned_data["volatile_keys"])

    def clean_sql_tools(self) -> list[str]:
        return _lines(self.cleaned_data["sql_tools"])

    def values(self) -> dict[str, Any]:
        """What `replay_config_set` takes."""
        return {name: self.cleaned_data[name] for name in CONFIG_FIELDS}

    @classmethod
    def initial_for(cls, config: ReplayConfig | None) -> dict[str, Any]:
        source = config if config is not None else ReplayConfig()
        return {
            "environment": source.environment,
            "seed_key": source.seed_key,
            "default_seed": source.default_seed,
            "use_mock_store": source.use_mock_store,
            "http_base_url": source.http_base_url,
            "http_routes": orjson.dumps(source.http_routes, option=orjson.OPT_INDENT_2).decode()
            if source.http_routes
            else "",
            "http_timeout_s": source.http_timeout_s,
            "http_retries": source.http_retries,
            "check_http_status": source.check_http_status,
            "volatile_keys": "\n".join(str(k) for k in source.volatile_keys or []),
            "sql_tools": "\n".join(str(t) for t in source.sql_tools or []),
        }
