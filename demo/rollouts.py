"""Demo data the project generates itself: airline-desk goals and scripted agent runs, and a
small SWE-style coding task with its runs. Deterministic for a given seed; no Django models.

Tool-use runs are OpenAI chat records ({messages, tools, metadata}). Every call is executed
against the airline environment, so observations are real, and each run's reward is computed
τ-bench-style: the final state after replaying the run's calls on a fresh `reset(seed)` must
equal the state after the gold actions, and the expected outputs must appear in the replies.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import random
import string
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from verification.environments import environment_get, is_error, replay
from verification.environments.airline import DATES, TODAY

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

__all__ = [
    "BEHAVIOURS",
    "MODELS",
    "agent_calls",
    "coding_runs",
    "coding_task",
    "coding_tool_specs",
    "goals",
    "reward_of",
    "tool_specs",
    "tool_use_runs",
]


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


# --- atomic goals ---------------------------------------------------------------------------------


def _lookup(p: _Picker, r: dict[str, Any]) -> Goal:
    rid, first = r["reservation_id"], r["flights"][0]
    return Goal(
        "",
        "atomic",
        f"Hi, I'm {p.user_of(r)['name']['first_name']} (user id {r['user_id']}). Which cabin is my reservation {rid} in, and what is the first flight number?",
        ["lookup", "read"],
        [
            Calls([_call("get_reservation_details", reservation_id=rid)], f"Look up reservation {rid}."),
            Say(
                f"Your reservation {rid} is in {_cabin(r['cabin'])} class; the first flight is {first['flight_number']} from {first['origin']} to {first['destination']} on {first['date']}."
            ),
        ],
        [_cabin(r["cabin"]), first["flight_number"]],
    )


def _gift_balance(p: _Picker, u: dict[str, Any]) -> Goal:
    cards = [m for m in u["payment_methods"].values() if m["source"] == "gift_card"]
    total = sum(m["amount"] for m in cards)
    script: Script = [
        Calls([_call("get_user_details", user_id=u["user_id"])], "Fetch the profile to see the gift cards.")
    ]
    if len(cards) > 1:
        expression = " + ".join(str(m["amount"]) for m in cards)
        script.append(
            Calls([_call("calculate", expression=expression)], f"Add up the {len(cards)} gift card balances.")
        )
    script.append(Say(f"You have {len(cards)} gift card(s) with a total balance of ${total}."))
    return Goal(
        "",
        "atomic",
        f"What is the total balance of my gift cards? My user id is {u['user_id']}.",
        ["gift-card", "lookup", "read", "arithmetic"],
        script,
        [f"${total}"],
    )


def _flight_status(p: _Picker, r: dict[str, Any]) -> Goal:
    seg = next(s for s in r["flights"] if s["date"] <= DATES[1])
    status = _day(p.state, seg["flight_number"], seg["date"])["status"]
    return Goal(
        "",
        "atomic",
        f"Is flight {seg['flight_number']} on {seg['date']} running as planned?",
        ["flight-status", "lookup", "read"],
        [
            Calls(
                [_call("get_flight_status", flight_number=seg["flight_number"], date=seg["date"])],
                "Check the flight's status.",
            ),
            Say(f"Flight {seg['flight_number']} on {seg['date']} is currently: {status}."),
        ],
        [status],
    )


def _cancel(p: _Picker, r: dict[str, Any]) -> Goal:
    rid = r["reservation_id"]
    paid = sum(x["amount"] for x in r["payment_history"])
    return Goal(
        "",
        "atomic",
        f"Please cancel reservation {rid}, my plans changed. I'm {r['user_id']}.",
        ["cancel", "write", "confirmation"],
        [
            Calls([_call("get_reservation_details", reservation_id=rid)], "Check the reservation can be cancelled."),
            *_confirm(
                f"Reservation {rid} ({_trip(r)}) will be cancelled and ${paid} refunded to the original payment method."
            ),
            Calls([_call("cancel_reservation", reservation_id=rid)], "The user confirmed; cancel it."),
            Say(f"Reservation {rid} is cancelled; the refund of ${paid} is on its way."),
        ],
    )


def _bags(p: _Picker, r: dict[str, Any]) -> Goal:
    rid, user = r["reservation_id"], p.user_of(r)
    free = user["membership"] == "gold"
    total, nonfree = r["total_baggages"] + 1, r["nonfree_baggages"] + (0 if free else 1)
    cost = "free of charge as a gold member" if free else "for $50 on your credit card"
    return Goal(
        "",
        "atomic",
        f"Can you add one checked bag to reservation {rid}? Charge my credit card if needed. (user {r['user_id']})",
        ["baggage", "write", "confirmation", "parallel-calls"],
        [
            Calls(
                [_call("get_reservation_details", reservation_id=rid), _call("get_user_details", user_id=r["user_id"])],
                "Read the reservation and the user's membership and cards together.",
            ),
            *_confirm(f"I'll raise the checked bags on {rid} from {r['total_baggages']} to {total}, {cost}."),
            Calls(
                [
                    _call(
                        "update_reservation_baggages",
                        reservation_id=rid,
                        total_baggages=total,
                        nonfree_baggages=nonfree,
                        payment_id=_card(user),
                    )
                ],
                "Confirmed: update the bags.",
            ),
            Say(f"Done: reservation {rid} now has {total} checked bag(s), {cost}."),
        ],
    )


# --- composite goals ------------------------------------------------------------------------------


def _upgrade_difference(p: _Picker, r: dict[str, Any], cabin: str) -> tuple[int, str]:
    new = [_day(p.state, s["flight_number"], s["date"])["prices"][cabin] for s in r["flights"]]
    pax = len(r["passengers"])
    expression = f"({' + '.join(map(str, new))} - ({' + '.join(str(s['price']) for s in r['flights'])})) * {pax}"
    return (sum(new) - sum(s["price"] for s in r["flights"])) * pax, expression


def _upgrade(p: _Picker, r: dict[str, Any]) -> Goal:
    rid, user = r["reservation_id"], p.user_of(r)
    difference, expression = _upgrade_difference(p, r, "business")
    return Goal(
        "",
        "composite",
        f"I'm {r['user_id']}. Please upgrade reservation {rid} to business class on the same flights and charge the difference to my credit card.",
        ["upgrade", "write", "payment", "arithmetic", "confirmation", "parallel-calls"],
        [
            Calls(
                [_call("get_reservation_details", reservation_id=rid), _call("get_user_details", user_id=r["user_id"])],
                "I need the current fares and the user's credit card.",
            ),
            Calls(
                [_call("calculate", expression=expression)], "Business fares minus what was paid, times the passengers."
            ),
            *_confirm(f"Upgrading {rid} ({_trip(r)}) to business costs ${difference}, charged to {_card(user)}."),
            Calls(
                [
                    _call(
                        "update_reservation_flights",
                        reservation_id=rid,
                        cabin="business",
                        flights=_refs(r),
                        payment_id=_card(user),
                    )
                ],
                "Confirmed: change the cabin, keep the flights.",
            ),
            Say(f"Your reservation {rid} is now in business class; ${difference} was charged to your card."),
        ],
        [f"${difference}"],
    )


def _new_date(p: _Picker, r: dict[str, Any]) -> str | None:
    seg = r["flights"][0]
    pax = len(r["passengers"])
    for date in DATES:
        day = _day(p.state, seg["flight_number"], date)
        if date > seg["date"] and day["status"] == "available" and day["available_seats"][r["cabin"]] >= pax:
            return date
    return None


def _change_date(p: _Picker, r: dict[str, Any]) -> Goal:
    rid, user, seg = r["reservation_id"], p.user_of(r), r["flights"][0]
    date = _new_date(p, r) or DATES[-1]
    price = _day(p.state, seg["flight_number"], date)["prices"][r["cabin"]]
    difference = (price - seg["price"]) * len(r["passengers"])
    money = (
        f"${difference} more, charged to your card"
        if difference >= 0
        else f"${-difference} less, refunded to your card"
    )
    return Goal(
        "",
        "composite",
        f"Hello, this is {r['user_id']}. Could you move my flight on reservation {rid} to {date}? Same cabin, and use my credit card for any difference.",
        ["change-flight", "search", "write", "payment", "confirmation"],
        [
            Calls([_call("get_reservation_details", reservation_id=rid)], "Read the booking."),
            Calls(
                [_call("search_direct_flight", origin=r["origin"], destination=r["destination"], date=date)],
                f"Find direct {r['origin']}→{r['destination']} flights on {date}.",
            ),
            *_confirm(
                f"I'll move {rid} to {seg['flight_number']} on {date} in {_cabin(r['cabin'])}; it costs {money}."
            ),
            Calls(
                [
                    _call(
                        "update_reservation_flights",
                        reservation_id=rid,
                        cabin=r["cabin"],
                        flights=[{"flight_number": seg["flight_number"], "date": date}],
                        payment_id=_card(user),
                    )
                ],
                "Confirmed: change the flight date.",
            ),
            Say(f"Done: reservation {rid} is now on {seg['flight_number']} on {date}; the fare is {money}."),
        ],
        [date],
    )


def _cancel_two(p: _Picker, user: dict[str, Any]) -> Goal:
    rids = [rid for rid in user["reservations"] if _cancellable(p.state["reservations"][rid])][:2]
    p.used.update(rids)
    a, b = rids
    return Goal(
        "",
        "composite",
        f"I'm {user['user_id']} and I need to cancel both {a} and {b}.",
        ["cancel", "write", "confirmation", "parallel-calls"],
        [
            Calls(
                [
                    _call("get_reservation_details", reservation_id=a),
                    _call("get_reservation_details", reservation_id=b),
                ],
                "Read both reservations.",
            ),
            *_confirm(
                f"I'll cancel {a} ({_trip(p.state['reservations'][a])}) and {b} ({_trip(p.state['reservations'][b])}), refunds to the original payment methods."
            ),
            Calls(
                [_call("cancel_reservation", reservation_id=a), _call("cancel_reservation", reservation_id=b)],
                "Confirmed: cancel both.",
            ),
            Say(f"Both reservations, {a} and {b}, are cancelled; refunds go back to the original payment methods."),
        ],
    )


def _book(p: _Picker, user: dict[str, Any]) -> Goal:
    flight = p.state["flights"][p.rng.choice(sorted(p.state["flights"]))]
    date = p.rng.choice(DATES[4:])
    price = _day(p.state, flight["flight_number"], date)["prices"]["economy"]
    me = {"first_name": user["name"]["first_name"], "last_name": user["name"]["last_name"], "dob": user["dob"]}
    book = _call(
        "book_reservation",
        user_id=user["user_id"],
        origin=flight["origin"],
        destination=flight["destination"],
        flight_type="one_way",
        cabin="economy",
        flights=[{"flight_number": flight["flight_number"], "date": date}],
        passengers=[me],
        payment_methods=[{"payment_id": _card(user), "amount": price}],
        total_baggages=0,
        nonfree_baggages=0,
        insurance="no",
    )
    return Goal(
        "",
        "composite",
        f"I'm {user['user_id']}. Book me a one-way economy seat from {flight['origin']} to {flight['destination']} on {date}, just me, no bags, no insurance, paid with my credit card.",
        ["booking", "search", "write", "payment", "confirmation"],
        [
            Calls([_call("get_user_details", user_id=user["user_id"])], "Get the passenger details and the card."),
            Calls(
                [_call("search_direct_flight", origin=flight["origin"], destination=flight["destination"], date=date)],
                "Search direct flights.",
            ),
            *_confirm(
                f"I found {flight['flight_number']} departing {flight['scheduled_departure_time_est']} for ${price} in economy, one passenger, charged to {_card(user)}."
            ),
            Calls([book], "Confirmed: book it."),
            Say(
                f"You're booked on {flight['flight_number']} on {date} ({flight['origin']} → {flight['destination']}) in economy for ${price}."
            ),
        ],
        [flight["flight_number"]],
    )


def _upgrade_and_bag(p: _Picker, r: dict[str, Any]) -> Goal:
    goal = _upgrade(p, r)
    user = p.user_of(r)
    rid = r["reservation_id"]
    nonfree = r["nonfree_baggages"] + (0 if user["membership"] == "gold" else 1)
    bag = Calls(
        [
            _call(
                "update_reservation_baggages",
                reservation_id=rid,
                total_baggages=r["total_baggages"] + 1,
                nonfree_baggages=nonfree,
                payment_id=_card(user),
            )
        ],
        "Now the extra bag.",
    )
    goal.script[-1:] = [bag, Say(f"{_final(goal.script)} I also added one checked bag.")]
    goal.prompt = goal.prompt.replace("credit card.", "credit card. I also need one more checked bag on it.")
    goal.tags = [*goal.tags, "baggage"]
    return goal


# --- ambiguous goals ------------------------------------------------------------------------------


def _basic_change(p: _Picker, r: dict[str, Any]) -> Goal:
    rid = r["reservation_id"]
    return Goal(
        "",
        "ambiguous",
        f"I need to push my trip on reservation {rid} back a couple of days. user id: {r['user_id']}",
        ["policy", "change-flight", "refusal"],
        [
            Calls(
                [_call("get_reservation_details", reservation_id=rid)], "Check the fare class before changing anything."
            ),
            Say(
                f"I'm sorry: {rid} is a basic economy booking, and basic economy flights cannot be modified. I can still change its cabin if you like."
            ),
        ],
        ["cannot be modified"],
    )


def _which(p: _Picker, user: dict[str, Any]) -> Goal:
    rids = user["reservations"]
    target = p.state["reservations"][next(rid for rid in rids if _cancellable(p.state["reservations"][rid]))]
    listing = "; ".join(f"{rid}: {_trip(p.state['reservations'][rid])}" for rid in rids)
    return Goal(
        "",
        "ambiguous",
        f"Hi, I'm {user['user_id']}. Please cancel my upcoming reservation.",
        ["clarification", "cancel", "write", "confirmation", "parallel-calls"],
        [
            Calls([_call("get_user_details", user_id=user["user_id"])], "Which reservations does the user have?"),
            Calls(
                [_call("get_reservation_details", reservation_id=rid) for rid in rids],
                "Read them all to tell them apart.",
            ),
            Say(f"You have {len(rids)} reservations — {listing}. Which one should I cancel?"),
            User(f"The one from {target['origin']} to {target['destination']}, {target['reservation_id']}."),
            *_confirm(
                f"I'll cancel {target['reservation_id']} ({_trip(target)}) with a refund to the original payment method."
            ),
            Calls([_call("cancel_reservation", reservation_id=target["reservation_id"])], "Confirmed: cancel it."),
            Say(f"Reservation {target['reservation_id']} is cancelled."),
        ],
    )


def _compensation(p: _Picker, r: dict[str, Any]) -> Goal:
    rid, user = r["reservation_id"], p.user_of(r)
    seg = next(
        s for s in r["flights"] if _day(p.state, s["flight_number"], s["date"])["status"] in ("delayed", "cancelled")
    )
    status = _day(p.state, seg["flight_number"], seg["date"])["status"]
    eligible = user["membership"] in ("silver", "gold") or r["cabin"] == "business" or r["insurance"] == "yes"
    amount = (100 if status == "cancelled" else 50) * len(r["passengers"])
    reads = Calls(
        [
            _call("get_reservation_details", reservation_id=rid),
            _call("get_user_details", user_id=r["user_id"]),
            _call("get_flight_status", flight_number=seg["flight_number"], date=seg["date"]),
        ],
        "Verify the booking, the membership and what happened to the flight.",
    )
    script: Script = [reads]
    if eligible:
        script += [
            *_confirm(
                f"Flight {seg['flight_number']} was {status}. As a goodwill gesture I can send you a ${amount} travel certificate."
            ),
            Calls([_call("send_certificate", user_id=r["user_id"], amount=amount)], "Confirmed: send the certificate."),
            Say(f"A ${amount} certificate is now in your account. Sorry again for the disruption."),
        ]
        outputs = [f"${amount}"]
    else:
        script.append(
            Say(
                f"I'm sorry about flight {seg['flight_number']}. Under our policy this reservation is not eligible for compensation (regular membership, no insurance, {_cabin(r['cabin'])} cabin)."
            )
        )
        outputs = ["not eligible"]
    return Goal(
        "",
        "ambiguous",
        f"My flight {seg['flight_number']} on {seg['date']} was {status}. What can you do for me? Reservation {rid}, user {r['user_id']}.",
        ["compensation", "policy", "parallel-calls", "write" if eligible else "refusal"],
        script,
        outputs,
    )


def _disrupted(state: dict[str, Any], r: dict[str, Any]) -> bool:
    return any(_day(state, s["flight_number"], s["date"])["status"] in ("delayed", "cancelled") for s in r["flights"])


def _build_goals(seed: int) -> list[Goal]:
    state = ENV.reset(seed)
    p = _Picker(state, random.Random(seed))
    active = [r for r in state["reservations"].values() if r.get("status") != "cancelled"]
    built: list[Goal] = []
    built += [_compensation(p, r) for r in p.reservations(lambda r: _disrupted(state, r), 3)]
    built += [_basic_change(p, r) for r in p.reservations(lambda r: r["cabin"] == "basic_economy", 3)]
    built += [
        _which(p, u)
        for u in p.users(
            lambda u: (
                len(u["reservations"]) >= 2
                and any(_cancellable(state["reservations"][x]) for x in u["reservations"])
                and not set(u["reservations"]) & p.used
            ),
            3,
        )
    ]
    built += [
        _flight_status(p, r) for r in p.reservations(lambda r: any(s["date"] <= DATES[1] for s in r["flights"]), 2)
    ]
    built += [_lookup(p, r) for r in p.reservations(lambda r: True, 3)]
    built += [
        _gift_balance(p, u)
        for u in p.users(lambda u: any(m["source"] == "gift_card" for m in u["payment_methods"].values()), 2)
    ]
    built += [_cancel(p, r) for r in p.reservations(_cancellable, 3)]
    built += [_bags(p, r) for r in p.reservations(lambda r: _open(state, r, r["cabin"]), 2)]
    upgradable = [r for r in active if r["cabin"] != "business" and _open(state, r, "business")]
    built += [_upgrade(p, r) for r in p.reservations(lambda r: r in upgradable, 3)]
    built += [
        _change_date(p, r)
        for r in p.reservations(
            lambda r: (
                r["flight_type"] == "one_way"
                and r["cabin"] != "basic_economy"
                and _open(state, r, r["cabin"])
                and _new_date(p, r) is not None
            ),
            3,
        )
    ]
    built += [
        _cancel_two(p, u)
        for u in p.users(
            lambda u: (
                sum(_cancellable(state["reservations"][x]) for x in u["reservations"]) >= 2
                and not set(u["reservations"]) & p.used
            ),
            2,
        )
    ]
    built += [_book(p, u) for u in p.users(lambda u: True, 2)]
    built += [_upgrade_and_bag(p, r) for r in p.reservations(lambda r: r in upgradable, 2)]
    built += [_lookup(p, r) for r in p.reservations(lambda r: True, max(0, MIN_GOALS - len(built)))]
    order = {"atomic": 0, "composite": 1, "ambiguous": 2}
    built.sort(key=lambda g: order[g.band])
    for i, goal in enumerate(built, start=1):
        goal.goal_id = f"airline-{i:03d}-{goal.tags[0]}"
    return built


# --- public API -----------------------------------------------------------------------------------


def tool_specs() -> list[dict[str, Any]]:
    """The airline desk's tools: OpenAI function specs plus side effects and latency p99."""
    return ENV.tool_specs()


def goals(seed: int = 7) -> list[dict[str, Any]]:
    return [goal.public(seed) for goal in _build_goals(seed)]


def tool_use_runs(seed: int = 7) -> Iterator[dict[str, Any]]:
    """Every goal × model × trial (2–4 trials per goal), as OpenAI chat records."""
    for index, goal in enumerate(_build_goals(seed)):
        gold_hash = replay(ENV, seed=seed, calls=goal.gold).state_hash
        for model in MODELS:
            for trial in range(1, 2 + index % 3 + 1):
                yield _rollout(goal, model, trial, seed, gold_hash)


def agent_calls(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The run's tool calls in order, as {name, arguments}."""
    return [
        {"name": c["function"]["name"], "arguments": json.loads(c["function"]["arguments"])}
        for m in record["messages"]
        if m["role"] == "assistant"
        for c in m.get("tool_calls") or []
    ]


def reward_of(
    record: dict[str, Any], *, expected_actions: list[dict[str, Any]], expected_outputs: list[str], seed: int
) -> float:
    """τ-bench-style: final states equal (both replayed from scratch) and the expected outputs said."""
    gold_hash = replay(ENV, seed=seed, calls=expected_actions).state_hash
    return _reward(record, expected_outputs, seed, gold_hash)


def _reward(record: dict[str, Any], expected_outputs: list[str], seed: int, gold_hash: str) -> float:
    if replay(ENV, seed=seed, calls=agent_calls(record)).state_hash != gold_hash:
        return 0.0
    return 1.0 if _said(record["messages"], expected_outputs) else 0.0


def _said(messages: list[dict[str, Any]], outputs: list[str]) -> bool:
    replies = " ".join(
        (m.get("content") or "") for m in messages if m["role"] == "assistant" and not m.get("tool_calls")
    ).lower()
    return all(output.lower() in replies for output in outputs)


# --- scripted agents ------------------------------------------------------------------------------

_ALNUM = string.ascii_letters + string.digits
_CONFIRMATIONS = ["Yes, please go ahead.", "yes", "Yes, do it.", "Confirmed, go ahead.", "Yes please!"]
_GIVE_UP = [
    "I'm sorry, but I'm not able to complete this request with the tools I have. Please contact our reservations team.",
    "Unfortunately I can't help with that change here. Is there anything else I can do for you?",
]
_RETRY = [
    "That call failed ({reason}). I'll correct the arguments and call {name} again.",
    "The tool rejected my call: {reason}. Fixing it and retrying.",
    "I made a mistake there ({reason}); retrying {name} with the right arguments.",
]
_APOLOGY = [
    "I'm sorry — the system returned an error and I couldn't complete this. Please try again later.",
    "Something went wrong on my side and the request did not go through. Could you try again in a few minutes?",
]


class _Rollout:
    """One run in progress: the transcript, the environment state, the run's own random source."""

    def __init__(self, goal: Goal, model: ModelProfile, trial: int, seed: int) -> None:
        self.goal, self.model = goal, model
        self.rng = random.Random(f"{seed}:{goal.goal_id}:{model.name}:{trial}")
        self.state = ENV.reset(seed)
        self.messages: list[dict[str, Any]] = [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": goal.prompt},
        ]
        self.chars = len(SYSTEM_PROMPT) + len(goal.prompt)

    def _usage(self, text: str) -> dict[str, int]:
        self.chars += len(text)
        return {"prompt_tokens": self.chars // 4, "completion_tokens": max(1, len(text) // 4)}

    def calls(self, calls: list[dict[str, Any]], plan: str, *, show_plan: bool | None = None) -> list[str]:
        show = self.rng.random() < self.model.plan_rate if show_plan is None else show_plan
        tool_calls: list[dict[str, Any]] = [
            {
                "id": "call_" + "".join(self.rng.choice(_ALNUM) for _ in range(24)),
                "type": "function",
                "function": {"name": c["name"], "arguments": json.dumps(c["arguments"])},
            }
            for c in calls
        ]
        message: dict[str, Any] = {"role": "assistant", "content": plan if show else None, "tool_calls": tool_calls}
        if self.model.reasoning and not show:
            message["reasoning_content"] = plan
        message["usage"] = self._usage(plan + "".join(c["function"]["arguments"] for c in tool_calls))
        self.messages.append(message)
        observations = []
        for call, tool_call in zip(calls, tool_calls, strict=True):
            observation = ENV.call(self.state, call["name"], call["arguments"])
            self.chars += len(observation)
            self.messages.append(
                {"role": "tool", "tool_call_id": tool_call["id"], "name": call["name"], "content": observation}
            )
            observations.append(observation)
        return observations

    def say(self, text: str) -> None:
        self.messages.append({"role": "assistant", "content": text, "usage": self._usage(text)})

    def user(self, turn: User) -> None:
        text = self.rng.choice(_CONFIRMATIONS) if turn.confirm else turn.text
        self.messages.append({"role": "user", "content": text})
        self.chars += len(text)


def _behaviour(model: ModelProfile, band: str, rng: random.Random) -> str:
    weights = list(model.weights)
    if band == "ambiguous":
        weights[0] *= 0.7
    return rng.choices(BEHAVIOURS, weights=weights)[0]


def _first_write(script: Script) -> tuple[int, int] | None:
    for i, item in enumerate(script):
        if isinstance(item, Calls):
            for j, call in enumerate(item.calls):
                if call["name"] in WRITE_TOOLS:
                    return i, j
    return None


def _first_call(script: Script) -> tuple[int, int]:
    return next((i, 0) for i, item in enumerate(script) if isinstance(item, Calls))


def _give_up_at(script: Script) -> int:
    """Where a quitting agent stops: before asking to confirm a write, else before its last call."""
    confirm = next((i for i, item in enumerate(script) if isinstance(item, Say) and item.confirm), None)
    if confirm is not None:
        return confirm
    return max(i for i, item in enumerate(script) if isinstance(item, Calls))


_ID_KEYS = ("reservation_id", "user_id", "payment_id")
_RENAMES = {"reservation_id": "reservation_number", "user_id": "customer_id", "payment_id": "payment_method"}


def _typo(value: str, rng: random.Random) -> str:
    """Two neighbours swapped, or one character mistyped."""
    chars = list(value)
    i = rng.randrange(len(chars) - 1)
    if chars[i] != chars[i + 1] and rng.random() < 0.5:
        chars[i], chars[i + 1] = chars[i + 1], chars[i]
    else:
        pool = (
            string.digits
            if chars[i].isdigit()
            else string.ascii_uppercase
            if chars[i].isupper()
            else string.ascii_lowercase
        )
        chars[i] = rng.choice(pool.replace(chars[i], ""))
    return "".join(chars)


def _corrupt(call: dict[str, Any], state: dict[str, Any], rng: random.Random) -> tuple[dict[str, Any], str]:
    """A wrong version of `call` that the environment rejects, and what kind of mistake it is."""
    args = dict(call["arguments"])
    kinds = ["invented_key"]
    if any(k in args for k in _ID_KEYS):
        kinds += ["typo_id", "typo_id"]
    if "cabin" in args:
        kinds += ["bad_enum", "bad_enum"]
    if any(isinstance(v, int) and not isinstance(v, bool) for v in args.values()):
        kinds += ["wrong_type", "wrong_type"]
    kind = rng.choice(kinds)
    if kind == "typo_id":
        key = next(k for k in _ID_KEYS if k in args)
        known = state["reservations"] if key == "reservation_id" else state["users"] if key == "user_id" else {}
        wrong = _typo(args[key], rng)
        while wrong in known or wrong == args[key]:
            wrong = _typo(wrong, rng)
        args[key] = wrong
    elif kind == "bad_enum":
        args["cabin"] = rng.choice(["busines", "Business", "first", "premium_economy"])
    elif kind == "wrong_type":
        key = next(k for k, v in args.items() if isinstance(v, int) and not isinstance(v, bool))
        args[key] = str(args[key])
    else:
        id_key = next((k for k in _ID_KEYS if k in args), None)
        if id_key is not None and rng.random() < 0.5:
            args[_RENAMES[id_key]] = args.pop(id_key)
        else:
            args["confirm"] = True
    return {"name": call["name"], "arguments": args}, kind


def _wrong_tool(call: dict[str, Any]) -> dict[str, Any]:
    """A plausible but wrong tool for what `call` meant to do."""
    a = call["arguments"]
    swaps: dict[str, Any] = {
        "get_reservation_details": lambda: _call("get_user_details", user_id=a["reservation_id"]),
        "get_user_details": lambda: _call("get_reservation_details", reservation_id=a["user_id"]),
        "search_direct_flight": lambda: _call("get_flight_status", **a),
        "get_flight_status": lambda: _call("search_direct_flight", **a),
        "update_reservation_flights": lambda: _call("cancel_reservation", reservation_id=a["reservation_id"]),
        "update_reservation_baggages": lambda: _call("add_checked_bags", reservation_id=a["reservation_id"], bags=1),
        "cancel_reservation": lambda: _call("get_reservation_details", reservation_id=a["reservation_id"]),
        "send_certificate": lambda: _call("get_user_details", user_id=a["user_id"]),
        "book_reservation": lambda: _call(
            "search_direct_flight", origin=a["origin"], destination=a["destination"], date=a["flights"][0]["date"]
        ),
    }
    return swaps.get(call["name"], lambda: _call("transfer_to_human_agents", summary="The user needs help."))()


def _final(script: Script) -> str:
    last = script[-1]
    return last.text if isinstance(last, Say) else ""


def _play(run: _Rollout, behaviour: str) -> dict[str, Any]:
    """Play the goal's script, bending it to `behaviour`; returns what was injected, if anything."""
    script = run.goal.script
    write = _first_write(script)
    target = write or _first_call(script)
    if behaviour == "recover":
        spots = [
            (i, j)
            for i, item in enumerate(script)
            if isinstance(item, Calls)
            for j, c in enumerate(item.calls)
            if c["name"] != "calculate"
        ]
        target = run.rng.choice(spots)
    stop = _give_up_at(script) if behaviour == "give_up" else None
    for i, item in enumerate(script):
        if i == stop:
            return _give_up(run)
        if isinstance(item, User):
            run.user(item)
        elif isinstance(item, Say):
            run.say(item.text)
        elif i != target[0] or behaviour in ("success", "give_up"):
            run.calls(item.calls, item.plan)
        elif behaviour == "recover":
            return _recover(run, item, target[1], i)
        else:
            return _fail(run, item, target[1], behaviour, is_write=write is not None)
    return {}


def _give_up(run: _Rollout) -> dict[str, Any]:
    if run.rng.random() < 0.5:
        summary = f"User asks: {run.goal.prompt[:160]} I could not complete it."
        run.calls([_call("transfer_to_human_agents", summary=summary)], "This is beyond what I can do; hand over.")
        run.say("I've transferred you to a human agent, who will pick this up shortly.")
    else:
        run.say(run.rng.choice(_GIVE_UP))
    return {"kind": "premature_termination"}


def _fail(run: _Rollout, item: Calls, j: int, behaviour: str, *, is_write: bool) -> dict[str, Any]:
    """A mistake the agent does not notice: it apologises vaguely or claims success anyway."""
    calls = list(item.calls)
    if behaviour == "wrong_tool":
        calls[j], kind = _wrong_tool(calls[j]), "wrong_tool"
    else:
        calls[j], kind = _corrupt(calls[j], run.state, run.rng)
    observation = run.calls(calls, item.plan)[j]
    if is_write and (not is_error(observation) or run.rng.random() < 0.5):
        run.say(_final(run.goal.script))  # hallucinated success
    else:
        run.say(run.rng.choice(_APOLOGY))
    return {"kind": kind, "call": calls[j]["name"]}


def _recover(run: _Rollout, item: Calls, j: int, i: int) -> dict[str, Any]:
    """Make a mistake, read the error, retry correctly, then finish the script."""
    calls = list(item.calls)
    intended = calls[j]
    if intended["name"] in ("get_reservation_details", "get_user_details") and run.rng.random() < 0.3:
        calls[j], kind = _wrong_tool(intended), "wrong_tool"
    else:
        calls[j], kind = _corrupt(intended, run.state, run.rng)
    observation = run.calls(calls, item.plan)[j]
    reason = observation.removeprefix("Error: ")
    run.calls([intended], run.rng.choice(_RETRY).format(reason=reason, name=intended["name"]), show_plan=True)
    for later in run.goal.script[i + 1 :]:
        if isinstance(later, User):
            run.user(later)
        elif isinstance(later, Say):
            run.say(later.text)
        else:
            run.calls(later.calls, later.plan)
    return {"kind": kind, "call": intended["name"], "recovered": True}


def _rollout(goal: Goal, model: ModelProfile, trial: int, seed: int, gold_hash: str) -> dict[str, Any]:
    run = _Rollout(goal, model, trial, seed)
    behaviour = _behaviour(model, goal.band, run.rng)
    injected = _play(run, behaviour)
    tools = [{"type": "function", "function": spec["function"]} for spec in ENV.tool_specs()]
    record: dict[str, Any] = {"messages": run.messages, "tools": tools}
    metadata: dict[str, Any] = {
        "model": model.name,
        "scaffold": SCAFFOLD,
        "rollout_id": f"{goal.goal_id}/{model.name}/{trial}",
        "trial": trial,
        "reward": _reward(record, goal.expected_outputs, seed, gold_hash),
        "goal_id": goal.goal_id,
        "band": goal.band,
        "tags": goal.tags,
        "environment": ENV.name,
        "env_seed": seed,
        "demo_behaviour": behaviour,
    }
    if injected:
        metadata["demo_injected"] = injected
    record["metadata"] = metadata
    return record


# --- the SWE-style coding task --------------------------------------------------------------------

CODING_INSTANCE = "demo__paginate-1"
CODING_REPO = "stepwise-demo/pagekit"
CODING_BASE_COMMIT = hashlib.sha256(b"stepwise-demo/pagekit@0.1").hexdigest()[:40]
CODING_SCAFFOLD = "swe-agent"
CODE_PATH = "pagekit/paginate.py"
TEST_PATH = "tests/test_paginate.py"
PAGINATE_SRC = '''"""Split a sequence into pages."""

from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


def page_count(total: int, per_page: int) -> int:
    """How many pages `total` items fill."""
    if per_page < 1:
        raise ValueError("per_page must be at least 1")
    return total // per_page


def paginate(items: Sequence[T], page: int, per_page: int = 10) -> list[T]:
    """The items on `page` (1-based)."""
    pages = page_count(len(items), per_page)
    if page < 1 or page > pages:
        raise IndexError(f"page {page} out of range 1..{pages}")
    start = (page - 1) * per_page
    return list(items[start : start + per_page])
'''
TESTS_SRC = """import pytest

from pagekit.paginate import page_count, paginate


def test_first_page():
    assert paginate(list(range(30)), 1) == list(range(10))


def test_exact_multiple_has_no_empty_page():
    assert page_count(20, 10) == 2


def test_page_past_the_end_raises():
    with pytest.raises(IndexError):
        paginate(list(range(20)), 3)


def test_per_page_must_be_positive():
    with pytest.raises(ValueError):
        page_count(5, 0)
"""
NEW_TEST = """

def test_partial_last_page():
    assert page_count(25, 10) == 3
    assert paginate(list(range(25)), 3) == [20, 21, 22, 23, 24]
"""
GOLD_LINE = "    return -(-total // per_page)\n"
PROBLEM_STATEMENT = """paginate() drops the last, partial page

With 25 items and 10 per page there should be 3 pages, but:

```python
>>> from pagekit.paginate import paginate
>>> paginate(list(range(25)), 3)
IndexError: page 3 out of range 1..2
```

`page_count(25, 10)` returns 2. Any total that is not a multiple of `per_page` loses its last page.
"""
REPRO = 'python -c "from pagekit.paginate import paginate; print(paginate(list(range(25)), 3))"'
PYTEST = f"pytest -q {TEST_PATH}"


def _diff(path: str, before: str, after: str) -> str:
    if before == after:
        return ""
    body = "".join(difflib.unified_diff(before.splitlines(True), after.splitlines(True), f"a/{path}", f"b/{path}"))
    return f"diff --git a/{path} b/{path}\n{body}"


def coding_task() -> dict[str, Any]:
    """The task in SWE-bench's shape (the gold patch under `patch`)."""
    gold = PAGINATE_SRC.replace("    return total // per_page\n", GOLD_LINE)
    return {
        "instance_id": CODING_INSTANCE,
        "repo": CODING_REPO,
        "base_commit": CODING_BASE_COMMIT,
        "problem_statement": PROBLEM_STATEMENT,
        "patch": _diff(CODE_PATH, PAGINATE_SRC, gold),
        "test_patch": _diff(TEST_PATH, TESTS_SRC, TESTS_SRC + NEW_TEST),
        "FAIL_TO_PASS": [f"{TEST_PATH}::test_partial_last_page"],
        "PASS_TO_PASS": [
            f"{TEST_PATH}::test_{name}"
            for name in (
                "first_page",
                "exact_multiple_has_no_empty_page",
                "page_past_the_end_raises",
                "per_page_must_be_positive",
            )
        ],
        "version": "0.1",
        "image": "stepwise-demo/pagekit:0.1",
        "created_at": "2024-05-15T15:00:00Z",
    }


def _swe_tool(
    name: str, description: str, properties: dict[str, Any], required: list[str], side_effects: str, latency: int
) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "type": "object",
                "properties": properties,
                "required": required,
                "additionalProperties": False,
            },
        },
        "side_effects": side_effects,
        "latency_p99_ms": latency,
    }


def coding_tool_specs() -> list[dict[str, Any]]:
    """SWE-agent's commands used by the demo runs, as function tools."""
    return [
        _swe_tool(
            "open",
            "Open a file in the editor window, optionally around a line.",
            {"path": {"type": "string", "minLength": 1}, "line_number": {"type": "integer", "minimum": 1}},
            ["path"],
            "read",
            120,
        ),
        _swe_tool(
            "search_file",
            "Search for a term in a file (the open file when no file is given).",
            {"search_term": {"type": "string", "minLength": 1}, "file": {"type": "string"}},
            ["search_term"],
            "read",
            150,
        ),
        _swe_tool(
            "edit",
            "Replace lines start_line..end_line (inclusive) of the open file with replacement_text. Edits that break the syntax are refused.",
            {
                "start_line": {"type": "integer", "minimum": 1},
                "end_line": {"type": "integer", "minimum": 1},
                "replacement_text": {"type": "string"},
            },
            ["start_line", "end_line", "replacement_text"],
            "write",
            300,
        ),
        _swe_tool(
            "bash",
            "Run a shell command in the repository.",
            {"command": {"type": "string", "minLength": 1}},
            ["command"],
            "destructive",
            30000,
        ),
        _swe_tool(
            "submit",
            "Submit the current changes as the solution (a diff against the base commit).",
            {},
            [],
            "write",
            500,
        ),
    ]


class _Raises:
    """`pytest.raises` for the in-process test runner."""

    def __init__(self, expected: type[BaseException]) -> None:
        self.expected = expected

    def __enter__(self) -> _Raises:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: Any) -> bool:
        if kind is None:
            raise AssertionError(f"DID NOT RAISE {self.expected.__name__}")
        return issubclass(kind, self.expected)


class _PytestShim:
    raises = _Raises


def _module(source: str) -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": "pagekit.paginate"}
    # The demo's own fixed source (or a scripted edit of it), never outside input.
    exec(compile(source, CODE_PATH, "exec"), namespace)  # noqa: S102
    return namespace


def _test_results(source: str, tests: str) -> list[tuple[str, str | None]]:
    """(test name, None when it passed else the failure text), running the tests in-process."""
    try:
        module = _module(source)
    except Exception as exc:
        return [("collection", f"{type(exc).__name__}: {exc}")]
    body = "\n".join("" if line.startswith(("import ", "from ")) else line for line in tests.splitlines())
    namespace: dict[str, Any] = {
        "pytest": _PytestShim,
        "paginate": module["paginate"],
        "page_count": module["page_count"],
    }
    exec(compile(body, TEST_PATH, "exec"), namespace)  # noqa: S102
    results: list[tuple[str, str | None]] = []
    for name in [n for n in namespace if n.startswith("test_")]:
        try:
            namespace[name]()
        except Exception as exc:
            frame = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == TEST_PATH][-1]
            line = tests.splitlines()[frame.lineno - 1] if frame.lineno else ""
            error = f"{type(exc).__name__}: {exc}".rstrip(": ")
            results.append((name, f">{line[1:]}\nE       {error}\n\n{TEST_PATH}:{frame.lineno}: {type(exc).__name__}"))
        else:
            results.append((name, None))
    return results


def _pytest_output(results: list[tuple[str, str | None]]) -> str:
    dots = "".join("." if error is None else "F" for _, error in results)
    failed = [(n, e) for n, e in results if e is not None]
    lines = [f"{dots:<72} [100%]"]
    if failed:
        lines.append("=" * 33 + " FAILURES " + "=" * 33)
        for name, error in failed:
            lines += [f"{'_' * 20} {name} {'_' * 20}", "", error]
        lines.append("=" * 26 + " short test summary info " + "=" * 26)
        lines += [f"FAILED {TEST_PATH}::{name}" for name, _ in failed]
    passed = len(results) - len(failed)
    summary = ", ".join(
        p for p in (f"{len(failed)} failed" if failed else "", f"{passed} passed" if passed else "") if p
    )
    lines.append(f"{summary} in 0.0{len(results)}s")
    return "\n".join(lines)


class _Workspace:
    """The repository as the scripted SWE agent sees it."""

    def __init__(self) -> None:
        self.files = {CODE_PATH: PAGINATE_SRC, TEST_PATH: TESTS_SRC}
        self.open_path = ""

    def window(self, path: str, around: int = 1) -> str:
        lines = self.files[path].splitlines()
        first = max(0, around - 50)
        shown = lines[first : first + 100]
        body = "\n".join(f"{first + i + 1}:{text}" for i, text in enumerate(shown))
        below = len(lines) - first - len(shown)
        return f"[File: /pagekit/{path} ({len(lines)} lines total)]\n({first} more lines above)\n{body}\n({below} more lines below)"

    def run(self, name: str, args: dict[str, Any]) -> str:
        return getattr(self, f"_{name}")(**args)

    def _open(self, path: str, line_number: int = 1) -> str:
        if path not in self.files:
            return f"Error: file {path} not found"
        self.open_path = path
        return self.window(path, line_number)

    def _search_file(self, search_term: str, file: str = "") -> str:
        path = file or self.open_path
        hits = [(i, text) for i, text in enumerate(self.files[path].splitlines(), start=1) if search_term in text]
        if not hits:
            return f'No matches found for "{search_term}" in /pagekit/{path}'
        found = "\n".join(f"Line {i}:{text}" for i, text in hits)
        return f'Found {len(hits)} matches for "{search_term}" in /pagekit/{path}:\n{found}\nEnd of matches for "{search_term}" in /pagekit/{path}'

    def _edit(self, start_line: int, end_line: int, replacement_text: str) -> str:
        lines = self.files[self.open_path].splitlines(True)
        text = replacement_text if replacement_text.endswith("\n") else replacement_text + "\n"
        candidate = "".join(lines[: start_line - 1]) + text + "".join(lines[end_line:])
        try:
            compile(candidate, self.open_path, "exec")
        except SyntaxError as exc:
            return (
                "Error: your proposed edit has introduced new syntax error(s). Please read this error message carefully and then retry editing the file.\n\n"
                f"ERRORS:\n- E999 {type(exc).__name__}: {exc.msg}\n\nYour changes have NOT been applied. Please fix your edit command and try again."
            )
        self.files[self.open_path] = candidate
        return (
            "File updated. Please review the changes and make sure they are correct (correct indentation, no duplicate lines, etc). Edit the file again if necessary.\n"
            + self.window(self.open_path, start_line)
        )

    def _bash(self, command: str) -> str:
        if command == "ls -R pagekit tests":
            return "pagekit:\n__init__.py\npaginate.py\n\ntests:\n__init__.py\ntest_paginate.py"
        if command == REPRO:
            try:
                return repr(_module(self.files[CODE_PATH])["paginate"](list(range(25)), 3))
            except Exception as exc:
                return f'Traceback (most recent call last):\n  File "<string>", line 1, in <module>\n  File "/pagekit/{CODE_PATH}", in paginate\n{type(exc).__name__}: {exc}'
        if command == PYTEST:
            return _pytest_output(_test_results(self.files[CODE_PATH], self.files[TEST_PATH]))
        return f"bash: {command.split()[0]}: command not found"

    def _submit(self) -> str:
        return _diff(CODE_PATH, PAGINATE_SRC, self.files[CODE_PATH])

    def resolved(self) -> bool:
        """FAIL_TO_PASS and PASS_TO_PASS all green with the test patch applied."""
        return all(error is None for _, error in _test_results(self.files[CODE_PATH], TESTS_SRC + NEW_TEST))


_LOOK = [
    ("Let me look at the repository layout first.", "bash", {"command": "ls -R pagekit tests"}),
    (
        "The issue names page_count; find where it is defined.",
        "search_file",
        {"search_term": "page_count", "file": CODE_PATH},
    ),
    ("Open the module.", "open", {"path": CODE_PATH}),
    ("Reproduce the report before changing anything.", "bash", {"command": REPRO}),
]
_GOLD_EDIT = (
    "page_count floors the division, so a partial last page is lost. Use ceiling division.",
    "edit",
    {"start_line": 13, "end_line": 13, "replacement_text": GOLD_LINE},
)
_PLUS_ONE = (
    "Floor division drops the remainder; add one page for it.",
    "edit",
    {"start_line": 13, "end_line": 13, "replacement_text": "    return total // per_page + 1\n"},
)
_CHECK = [
    ("Check the reproduction again.", "bash", {"command": REPRO}),
    ("Run the test suite.", "bash", {"command": PYTEST}),
]
_SUBMIT: tuple[str, str, dict[str, Any]] = ("The fix is in and the tests pass; submit.", "submit", {})
CODING_SCRIPTS: dict[str, list[tuple[str, str, dict[str, Any]]]] = {
    "resolved": [*_LOOK, _GOLD_EDIT, *_CHECK, _SUBMIT],
    "resolved_after_failure": [
        *_LOOK[2:],
        _PLUS_ONE,
        ("Run the tests.", "bash", {"command": PYTEST}),
        (
            "Adding one over-counts when the total is an exact multiple (20 items give 3 pages). Ceiling division is right.",
            "edit",
            {"start_line": 13, "end_line": 13, "replacement_text": GOLD_LINE},
        ),
        *_CHECK,
        _SUBMIT,
    ],
    "syntax_error_then_fixed": [
        *_LOOK[1:],
        (
            "Fix the rounding.",
            "edit",
            {"start_line": 13, "end_line": 13, "replacement_text": "  return -(-total // per_page)\n      "},
        ),
        (
            "The edit was refused for its indentation; redo it with four spaces.",
            "edit",
            {"start_line": 13, "end_line": 13, "replacement_text": GOLD_LINE},
        ),
        *_CHECK,
        _SUBMIT,
    ],
    "incorrect_fix": [
        *_LOOK[2:],
        _PLUS_ONE,
        ("The reproduction should work now.", "bash", {"command": REPRO}),
        ("It prints the last page. Submit.", "submit", {}),
    ],
    "wrong_localisation": [
        *_LOOK[2:],
        (
            "The range check in paginate() is off by one: allow one more page.",
            "edit",
            {"start_line": 19, "end_line": 19, "replacement_text": "    if page < 1 or page > pages + 1:\n"},
        ),
        *_CHECK,
        ("One test about the end of the range fails, but the reported case works. Submitting.", "submit", {}),
    ],
    "premature_submission": [
        _LOOK[1],
        _LOOK[2],
        (
            "page_count looks right to me; the caller must be passing a wrong per_page. Nothing to change here, submitting.",
            "submit",
            {},
        ),
    ],
}
CODING_PLAN = [
    ("gpt-4o-2024-08-06", 1, "resolved"),
    ("gpt-4o-2024-08-06", 2, "incorrect_fix"),
    ("claude-3-5-sonnet", 1, "resolved_after_failure"),
    ("claude-3-5-sonnet", 2, "resolved"),
    ("qwen2.5-72b-instruct", 1, "wrong_localisation"),
    ("qwen2.5-72b-instruct", 2, "premature_submission"),
    ("qwen2.5-72b-instruct", 3, "syntax_error_then_fixed"),
]
SWE_SYSTEM = (
    "SETTING: You are an autonomous programmer working in a command line with a special interface. "
    "The editor shows up to 100 lines of a file at a time. Use the tools to navigate, edit and test "
    "the repository at /pagekit, then call submit when the issue is fixed."
)


def coding_runs() -> Iterator[dict[str, Any]]:
    """SWE-agent-style runs on the coding task; some resolve it, some do not."""
    tools = [{"type": "function", "function": spec["function"]} for spec in coding_tool_specs()]
    for model, trial, behaviour in CODING_PLAN:
        rng = random.Random(f"{CODING_INSTANCE}:{model}:{trial}")
        workspace = _Workspace()
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": SWE_SYSTEM},
            {
                "role": "user",
                "content": f"We're solving this issue in {CODING_REPO}:\n\n{PROBLEM_STATEMENT}\nEdit the repository so the issue is fixed, then submit.",
            },
        ]
        for thought, name, args in CODING_SCRIPTS[behaviour]:
            call_id = "call_" + "".join(rng.choice(_ALNUM) for _ in range(24))
            function = {"name": name, "arguments": json.dumps(args)}
            messages.append(
                {
                    "role": "assistant",
                    "content": thought,
                    "tool_calls": [{"id": call_id, "type": "function", "function": function}],
                }
            )
            messages.append(
                {"role": "tool", "tool_call_id": call_id, "name": name, "content": workspace.run(name, args)}
            )
        yield {
            "messages": messages,
            "tools": tools,
            "metadata": {
                "model": model,
                "scaffold": CODING_SCAFFOLD,
                "rollout_id": f"{CODING_INSTANCE}/{model}/{trial}",
                "trial": trial,
                "reward": 1.0 if workspace.resolved() else 0.0,
                "instance_id": CODING_INSTANCE,
                "exit_status": "submitted",
                "model_patch": workspace.run("submit", {}),
                "demo_behaviour": behaviour,
            },
        }
