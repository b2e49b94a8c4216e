"""The airline goals (atomic, composite and ambiguous), each with the script a competent agent
follows; the gold actions are that script's calls."""

from __future__ import annotations

import random
from typing import Any

from demo.rollouts.setting import (
    ENV,
    MIN_GOALS,
    Calls,
    Goal,
    Say,
    Script,
    User,
    _cabin,
    _call,
    _cancellable,
    _card,
    _confirm,
    _day,
    _final,
    _open,
    _Picker,
    _refs,
    _trip,
)
from verification.environments.airline import DATES

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


def goals(seed: int = 7) -> list[dict[str, Any]]:
    return [goal.public(seed) for goal in _build_goals(seed)]
