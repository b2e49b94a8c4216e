"""The airline desk setting: the environment, the desk policy, the model profiles, the script
vocabulary goals are written in (calls, agent lines, user turns) and look-ups over the state."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from verification.environments import environment_get
from verification.environments.airline import TODAY

ENV = environment_get("airline")
SCAFFOLD = "demo-agent"
MIN_GOALS = 32
BEHAVIOURS = ("success", "wrong_argument", "wrong_tool", "give_up", "recover")
WRITE_TOOLS = frozenset(
    spec["function"]["name"] for spec in ENV.tool_specs() if spec["side_effects"] in ("write", "destructive")
)
SYSTEM_PROMPT = """# Airline desk policy (demo)

The current time is 2024-05-15 15:00:00 EST. You help users look up, book, change and cancel
reservations with the tools given.

- Before any action that changes the booking database (booking, changing flights or cabin, adding
  bags, cancelling, sending a certificate), list what you will do and get an explicit "yes".
- Basic economy flights cannot be changed (the cabin can be). Basic economy without insurance can
  only be cancelled within 24 hours of booking.
- Gold members check bags for free; otherwise each extra bag costs $50.
- Compensation: a cancelled flight earns a $100 certificate per passenger, a delayed one $50 per
  passenger, but only for silver or gold members, business cabin, or insured reservations.
- Transfer to a human agent only when a request is outside what the tools can do."""


@dataclass(frozen=True, slots=True)
class ModelProfile:
    name: str
    weights: tuple[float, float, float, float, float]  # in BEHAVIOURS order
    plan_rate: float  # how often the model writes its plan beside a call
    reasoning: bool  # whether it emits `reasoning_content`


MODELS = (
    ModelProfile("gpt-4o-2024-08-06", (0.55, 0.12, 0.08, 0.10, 0.15), 0.35, False),
    ModelProfile("claude-3-5-sonnet", (0.60, 0.08, 0.05, 0.07, 0.20), 0.85, False),
    ModelProfile("qwen2.5-72b-instruct", (0.40, 0.18, 0.14, 0.14, 0.14), 0.55, True),
)


# --- scripts: what a competent agent does for a goal --------------------------------------------


@dataclass(slots=True)
class Calls:
    calls: list[dict[str, Any]]
    plan: str


@dataclass(slots=True)
class Say:
    text: str
    confirm: bool = False  # asks the user for a yes before a write


@dataclass(slots=True)
class User:
    text: str
    confirm: bool = False  # a "yes" to a confirmation; the simulated user words it their own way


Script = list[Calls | Say | User]


@dataclass(slots=True)
class Goal:
    goal_id: str
    band: str
    prompt: str
    tags: list[str]
    script: Script
    expected_outputs: list[str] = field(default_factory=list)

    @property
    def gold(self) -> list[dict[str, Any]]:
        return [call for item in self.script if isinstance(item, Calls) for call in item.calls]

    def public(self, seed: int) -> dict[str, Any]:
        return {
            "goal_id": self.goal_id,
            "band": self.band,
            "prompt": self.prompt,
            "tags": self.tags,
            "expected_actions": self.gold,
            "expected_outputs": self.expected_outputs,
            "environment": ENV.name,
            "env_seed": seed,
        }


def _call(name: str, **arguments: Any) -> dict[str, Any]:
    return {"name": name, "arguments": arguments}


def _final(script: Script) -> str:
    last = script[-1]
    return last.text if isinstance(last, Say) else ""


def _cabin(cabin: str) -> str:
    return cabin.replace("_", " ")


def _card(user: dict[str, Any]) -> str:
    return next(m for m in user["payment_methods"] if m.startswith("credit_card_"))


def _trip(r: dict[str, Any]) -> str:
    first = r["flights"][0]
    return f"{r['origin']} → {r['destination']} on {first['date']} ({first['flight_number']})"


def _refs(r: dict[str, Any]) -> list[dict[str, str]]:
    return [{"flight_number": s["flight_number"], "date": s["date"]} for s in r["flights"]]


def _day(state: dict[str, Any], number: str, date: str) -> dict[str, Any]:
    return state["flights"][number]["dates"][date]


def _open(state: dict[str, Any], r: dict[str, Any], cabin: str) -> bool:
    """All the reservation's flights are in the future, on sale, with seats in `cabin`."""
    pax = len(r["passengers"])
    return all(
        s["date"] > TODAY
        and _day(state, s["flight_number"], s["date"])["status"] == "available"
        and _day(state, s["flight_number"], s["date"])["available_seats"][cabin] >= pax
        for s in r["flights"]
    )


def _cancellable(r: dict[str, Any]) -> bool:
    return (
        r.get("status") != "cancelled"
        and all(s["date"] > TODAY for s in r["flights"])
        and (r["cabin"] != "basic_economy" or r["insurance"] == "yes")
    )


def _confirm(text: str) -> list[Say | User]:
    return [Say(f"{text} Shall I go ahead (yes/no)?", confirm=True), User("Yes, please go ahead.", confirm=True)]


class _Picker:
    """Chooses reservations and users for goals, each at most once."""

    def __init__(self, state: dict[str, Any], rng: random.Random) -> None:
        self.state = state
        self.rng = rng
        self.used: set[str] = set()

    def reservations(self, test: Any, n: int) -> list[dict[str, Any]]:
        found = [r for rid, r in sorted(self.state["reservations"].items()) if rid not in self.used and test(r)]
        chosen = self.rng.sample(found, min(n, len(found)))
        self.used.update(r["reservation_id"] for r in chosen)
        self.used.update(r["user_id"] for r in chosen)
        return chosen

    def users(self, test: Any, n: int) -> list[dict[str, Any]]:
        found = [u for uid, u in sorted(self.state["users"].items()) if uid not in self.used and test(u)]
        chosen = self.rng.sample(found, min(n, len(found)))
        self.used.update(u["user_id"] for u in chosen)
        return chosen

    def user_of(self, r: dict[str, Any]) -> dict[str, Any]:
        return self.state["users"][r["user_id"]]
