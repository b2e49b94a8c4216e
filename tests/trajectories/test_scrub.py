"""The scrubber's walk that finds nothing gives back the value itself, and it finds something exactly where the
full scrub replaces something: over generated metadata with credentials, keys that name secrets, harmless
token counts, padding and short strings."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from trajectories.formats.scrub import _SECRET_VALUE, SCRUBBED, Scrubbed, _is_secret, _scrub, scrub

SECRETS = st.sampled_from(
    [
        "sk-" + "a" * 16,
        " sk-proj-FAKEFAKEFAKEFAKE01 ",
        "ghp_" + "b" * 20,
        "AKIA" + "C" * 16,
        "xoxb-" + "d" * 10,
        "xoxb-" + "d" * 9,  # one short of a token
        "Bearer abcdefghijkl",
        "Basic dXNlcjpwYXNzd29yZA==",
        "hf_" + "e" * 30,
        SCRUBBED,
        "abc",
        "",
    ]
)
KEYS = st.sampled_from(["api_key", "apiKey", "token", "prompt_tokens", "max_tokens", "name", "Authorization", "x"])
VALUES = st.recursive(
    st.one_of(st.text(max_size=20), SECRETS, st.integers(), st.none(), st.booleans()),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS | st.text(max_size=5), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(value=VALUES)
def test_the_quick_walk_agrees_with_the_full_scrub(value) -> None:
    full = Scrubbed()
    expected = _scrub(value, "/metadata", full, secret_key=False)
    got, found = scrub(value, pointer="/metadata")
    assert got == expected and found.where == full.where and found.values == full.values
    if not full.values:
        assert got is value  # nothing copied where nothing is scrubbed


@settings(max_examples=400, deadline=None)
@given(text=st.one_of(SECRETS, st.text(max_size=40), SECRETS.map(lambda s: s[:-1]), SECRETS.map(lambda s: "\t" + s)))
def test_a_string_is_a_secret_as_the_pattern_says(text) -> None:
    expected = bool(text) and text != SCRUBBED and bool(_SECRET_VALUE.match(text.strip()))
    assert _is_secret(text, secret_key=False) == expected
