"""A simulated airline desk: users, reservations and flights in one JSON state, eleven tools.

Modelled on the τ-bench airline domain (its shapes, not its data): everything is generated
from the seed. Writes enforce the desk's policy and answer "Error: …" when it is broken.
"""

from __future__ import annotations

import ast
import copy
import hashlib
import itertools
import json
import operator
import random
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import orjson

from verification.environments.base import Environment, Handler, ToolError, tool_spec

NOW = "2024-05-15T15:00:00"
TODAY = NOW[:10]
DATES = [f"2024-05-{day:02d}" for day in range(16, 31)]
AIRPORTS = [
    "ATL",
    "BOS",
    "DEN",
    "DFW",
    "EWR",
    "IAH",
    "JFK",
    "LAS",
    "LAX",
    "MCO",
    "MIA",
    "MSP",
    "ORD",
    "PHL",
    "PHX",
    "SEA",
    "SFO",
]
CABINS = ["basic_economy", "economy", "business"]
PRICE_RANGES = {"basic_economy": (50, 100), "economy": (100, 200), "business": (200, 500)}
BAG_FEE = 50
INSURANCE_FEE = 30
FIRST_NAMES = [
    "Mia",
    "Omar",
    "Yusuf",
    "Sofia",
    "Lucas",
    "Anya",
    "Raj",
    "Chen",
    "Amelia",
    "Noah",
    "Isabella",
    "Mohamed",
    "Emma",
    "Liam",
    "Aarav",
    "Fatima",
    "Ivan",
    "Lei",
    "Harper",
    "Ethan",
    "Ava",
    "Mei",
    "James",
    "Olivia",
]
LAST_NAMES = [
    "Li",
    "Rossi",
    "Silva",
    "Garcia",
    "Brown",
    "Patel",
    "Kim",
    "Wilson",
    "Nguyen",
    "Ahmed",
    "Lopez",
    "Sanchez",
    "Muller",
    "Santos",
    "Hernandez",
    "Johansson",
    "Ito",
    "Kovacs",
    "Taylor",
    "Moore",
]
CITIES = [
    ("Austin", "TX", "78701"),
    ("Denver", "CO", "80202"),
    ("Chicago", "IL", "60601"),
    ("Seattle", "WA", "98101"),
    ("Miami", "FL", "33101"),
    ("Boston", "MA", "02108"),
]
STREETS = ["Elm Street", "Highland Drive", "Lakeview Avenue", "Main Street", "Cedar Lane", "Sunset Boulevard"]
RESERVATION_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
FLIGHT_STATUSES = ["available", "on time", "delayed", "delayed", "cancelled"]


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(n))


def _stable_digits(*parts: str, n: int = 7) -> str:
    """Digits derived from the state (not a random draw), so replays create the same ids."""
    digest = hashlib.sha256("|".join(parts).encode()).hexdigest()
    return str(int(digest, 16))[:n]


def _stable_code(*parts: str) -> str:
    value = int(hashlib.sha256("|".join(parts).encode()).hexdigest(), 16)
    out = []
    for _ in range(6):
        value, index = divmod(value, len(RESERVATION_ALPHABET))
        out.append(RESERVATION_ALPHABET[index])
    return "".join(out)


# --- state generation -------------------------------------------------------------------------


def _flights(rng: random.Random) -> dict[str, Any]:
    flights: dict[str, Any] = {}
    numbers = rng.sample(range(1, 300), 64)
    routes: set[tuple[str, str]] = set()
    while len(routes) < 32:
        origin, destination = rng.sample(AIRPORTS, 2)
        if (destination, origin) not in routes:
            routes.add((origin, destination))
    pairs = sorted(routes)
    for i, (origin, destination) in enumerate(pairs):
        for leg, (a, b) in enumerate(((origin, destination), (destination, origin))):
            number = f"HAT{numbers[2 * i + leg]:03d}"
            departure = rng.randrange(5, 22)
            duration = rng.randrange(1, 7)
            arrival = departure + duration
            flights[number] = {
                "flight_number": number,
                "origin": a,
                "destination": b,
                "scheduled_departure_time_est": f"{departure:02d}:00:00",
                "scheduled_arrival_time_est": f"{arrival % 24:02d}:00:00" + ("+1" if arrival >= 24 else ""),
                "dates": {date: _flight_date(rng, date) for date in DATES},
            }
    return flights


def _flight_date(rng: random.Random, date: str) -> dict[str, Any]:
    status = rng.choice(FLIGHT_STATUSES) if date <= DATES[1] else "available"
    return {
        "status": status,
        "available_seats": {cabin: rng.randrange(2, 21) for cabin in CABINS},
        "prices": {cabin: rng.randrange(*PRICE_RANGES[cabin]) for cabin in CABINS},
    }


def _person(rng: random.Random) -> dict[str, str]:
    year = rng.randrange(1950, 2006)
    return {
        "first_name": rng.choice(FIRST_NAMES),
        "last_name": rng.choice(LAST_NAMES),
        "dob": f"{year}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}",
    }


def _payment_methods(rng: random.Random) -> dict[str, Any]:
    methods: dict[str, Any] = {}
    card = f"credit_card_{_digits(rng, 7)}"
    methods[card] = {
        "source": "credit_card",
        "brand": rng.choice(["visa", "mastercard"]),
        "last_four": _digits(rng, 4),
        "id": card,
    }
    for _ in range(rng.randrange(0, 3)):
        gift = f"gift_card_{_digits(rng, 7)}"
        methods[gift] = {"source": "gift_card", "amount": rng.randrange(20, 300), "id": gift}
    for _ in range(rng.randrange(0, 3)):
        cert = f"certificate_{_digits(rng, 7)}"
        methods[cert] = {"source": "certificate", "amount": rng.choice([100, 150, 250, 500]), "id": cert}
    return methods


def _users(rng: random.Random) -> dict[str, Any]:
    users: dict[str, Any] = {}
    while len(users) < 24:
        me = _person(rng)
        user_id = f"{me['first_name'].lower()}_{me['last_name'].lower()}_{rng.randrange(1000, 10000)}"
        if user_id in users:
            continue
        city, province, zip_code = rng.choice(CITIES)
        users[user_id] = {
            "user_id": user_id,
            "name": {"first_name": me["first_name"], "last_name": me["last_name"]},
            "address": {
                "address1": f"{rng.randrange(10, 999)} {rng.choice(STREETS)}",
                "city": city,
                "country": "USA",
                "province": province,
                "zip": zip_code,
            },
            "email": f"{me['first_name'].lower()}.{me['last_name'].lower()}{_digits(rng, 4)}@example.com",
            "dob": me["dob"],
            "payment_methods": _payment_methods(rng),
            "saved_passengers": [_person(rng) for _ in range(rng.randrange(0, 3))],
            "membership": rng.choice(["regular", "regular", "silver", "gold"]),
            "reservations": [],
        }
    return users


def _reservation(rng: random.Random, user: dict[str, Any], flights: dict[str, Any]) -> dict[str, Any]:
    outbound = flights[rng.choice(sorted(flights))]
    back = next(
        f for f in flights.values() if f["origin"] == outbound["destination"] and f["destination"] == outbound["origin"]
    )
    round_trip = rng.random() < 0.5
    first_day = rng.randrange(0, len(DATES) - 4)
    legs = [(outbound, DATES[first_day])]
    if round_trip:
        legs.append((back, DATES[first_day + rng.randrange(1, 4)]))
    cabin = rng.choice(["basic_economy", "economy", "economy", "business"])
    me = {"first_name": user["name"]["first_name"], "last_name": user["name"]["last_name"], "dob": user["dob"]}
    passengers = [me, *user["saved_passengers"][: rng.randrange(0, 2)]]
    segments = [
        {
            "origin": f["origin"],
            "destination": f["destination"],
            "flight_number": f["flight_number"],
            "date": date,
            "price": f["dates"][date]["prices"][cabin],
        }
        for f, date in legs
    ]
    insurance = rng.choice(["yes", "no", "no"])
    total_bags = rng.randrange(0, 3)
    nonfree = 0 if user["membership"] == "gold" else min(total_bags, rng.randrange(0, 2))
    amount = sum(s["price"] for s in segments) * len(passengers) + BAG_FEE * nonfree
    amount += INSURANCE_FEE * len(passengers) if insurance == "yes" else 0
    card = next(m for m in user["payment_methods"] if m.startswith("credit_card_"))
    return {
        "reservation_id": "",
        "user_id": user["user_id"],
        "origin": outbound["origin"],
        "destination": outbound["destination"],
        "flight_type": "round_trip" if round_trip else "one_way",
        "cabin": cabin,
        "flights": segments,
        "passengers": passengers,
        "payment_history": [{"payment_id": card, "amount": amount}],
        "created_at": f"2024-05-{rng.randrange(1, 15):02d}T{rng.randrange(0, 24):02d}:{rng.randrange(0, 60):02d}:00",
        "total_baggages": total_bags,
        "nonfree_baggages": nonfree,
        "insurance": insurance,
    }


def generate_state(seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    flights = _flights(rng)
    users = _users(rng)
    reservations: dict[str, Any] = {}
    for user_id in sorted(users):
        for _ in range(rng.randrange(1, 4)):
            reservation = _reservation(rng, users[user_id], flights)
            while not reservation["reservation_id"] or reservation["reservation_id"] in reservations:
                reservation["reservation_id"] = "".join(rng.choice(RESERVATION_ALPHABET) for _ in range(6))
            reservations[reservation["reservation_id"]] = reservation
            users[user_id]["reservations"].append(reservation["reservation_id"])
    return {"now": NOW, "flights": flights, "users": users, "reservations": reservations}


# --- the tools --------------------------------------------------------------------------------

_ID = {"type": "string", "minLength": 1}
_DATE = {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$", "description": "YYYY-MM-DD"}
_AIRPORT = {"type": "string", "pattern": "^[A-Z]{3}$", "description": "IATA airport code, e.g. JFK"}
_FLIGHT_REFS = {
    "type": "array",
    "minItems": 1,
    "items": {
        "type": "object",
        "properties": {"flight_number": {"type": "string", "pattern": "^HAT[0-9]{3}$"}, "date": _DATE},
        "required": ["flight_number", "date"],
        "additionalProperties": False,
    },
}
_RESERVATION_RETURNS = {"type": "object", "required": ["reservation_id", "flights", "cabin"]}

SPECS: list[dict[str, Any]] = [
    tool_spec(
        name="get_user_details",
        description="Get a user's profile: name, address, payment methods, membership and reservation ids.",
        properties={"user_id": {**_ID, "description": "The user id, such as 'sara_doe_496'."}},
        required=["user_id"],
        side_effects="read",
        latency_p99_ms=180,
        returns={"type": "object", "required": ["user_id", "payment_methods", "reservations"]},
    ),
    tool_spec(
        name="get_reservation_details",
        description="Get the details of a reservation: flights, cabin, passengers, payments, baggage.",
        properties={"reservation_id": {**_ID, "description": "The reservation id, such as '8JX2WO'."}},
        required=["reservation_id"],
        side_effects="read",
        latency_p99_ms=160,
        returns=_RESERVATION_RETURNS,
    ),
    tool_spec(
        name="search_direct_flight",
        description="Search direct flights between two airports on a date; only flights with seats for sale are listed.",
        properties={"origin": _AIRPORT, "destination": _AIRPORT, "date": _DATE},
        required=["origin", "destination", "date"],
        side_effects="read",
        latency_p99_ms=420,
        returns={"type": "array"},
    ),
    tool_spec(
        name="get_flight_status",
        description="Get the status of a flight on a date: available, on time, delayed, cancelled, landed.",
        properties={"flight_number": {"type": "string", "pattern": "^HAT[0-9]{3}$"}, "date": _DATE},
        required=["flight_number", "date"],
        side_effects="read",
        latency_p99_ms=150,
        returns={"type": "object", "required": ["status"]},
    ),
    tool_spec(
        name="book_reservation",
        description="Book a reservation. Payments must add up to the total price (fares × passengers + $50 per non-free bag + $30 per passenger for insurance).",
        properties={
            "user_id": _ID,
            "origin": _AIRPORT,
            "destination": _AIRPORT,
            "flight_type": {"type": "string", "enum": ["one_way", "round_trip"]},
            "cabin": {"type": "string", "enum": CABINS},
            "flights": _FLIGHT_REFS,
            "passengers": {
                "type": "array",
                "minItems": 1,
                "maxItems": 5,
                "items": {
                    "type": "object",
                    "properties": {"first_name": _ID, "last_name": _ID, "dob": _DATE},
                    "required": ["first_name", "last_name", "dob"],
                    "additionalProperties": False,
                },
            },
            "payment_methods": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "properties": {"payment_id": _ID, "amount": {"type": "integer", "minimum": 1}},
                    "required": ["payment_id", "amount"],
                    "additionalProperties": False,
                },
            },
            "total_baggages": {"type": "integer", "minimum": 0},
            "nonfree_baggages": {"type": "integer", "minimum": 0},
            "insurance": {"type": "string", "enum": ["yes", "no"]},
        },
        required=[
            "user_id",
            "origin",
            "destination",
            "flight_type",
            "cabin",
            "flights",
            "passengers",
            "payment_methods",
            "total_baggages",
            "nonfree_baggages",
            "insurance",
        ],
        side_effects="write",
        latency_p99_ms=950,
        returns=_RESERVATION_RETURNS,
    ),
    tool_spec(
        name="cancel_reservation",
        description="Cancel a whole reservation and refund it to the original payment methods. Basic economy without insurance can only be cancelled within 24 hours of booking.",
        properties={"reservation_id": _ID},
        required=["reservation_id"],
        side_effects="destructive",
        latency_p99_ms=700,
        returns=_RESERVATION_RETURNS,
    ),
    tool_spec(
        name="update_reservation_flights",
        description="Change the cabin and/or flights of a reservation (origin, destination and trip type stay). Basic economy flights cannot be changed; the fare difference is charged or refunded to payment_id.",
        properties={
            "reservation_id": _ID,
            "cabin": {"type": "string", "enum": CABINS},
            "flights": {**_FLIGHT_REFS, "description": "All flights of the reservation after the change, in order."},
            "payment_id": {**_ID, "description": "A payment method of the user, such as 'credit_card_7815826'."},
        },
        required=["reservation_id", "cabin", "flights", "payment_id"],
        side_effects="write",
        latency_p99_ms=880,
        returns=_RESERVATION_RETURNS,
    ),
    tool_spec(
        name="update_reservation_baggages",
        description="Set the number of checked bags (it can only go up); each new non-free bag costs $50, charged to payment_id.",
        properties={
            "reservation_id": _ID,
            "total_baggages": {"type": "integer", "minimum": 0, "maximum": 10},
            "nonfree_baggages": {"type": "integer", "minimum": 0, "maximum": 10},
            "payment_id": _ID,
        },
        required=["reservation_id", "total_baggages", "nonfree_baggages", "payment_id"],
        side_effects="write",
        latency_p99_ms=620,
        returns=_RESERVATION_RETURNS,
    ),
    tool_spec(
        name="send_certificate",
        description="Send a travel certificate (compensation) to a user; it appears among their payment methods.",
        properties={"user_id": _ID, "amount": {"type": "integer", "minimum": 1, "maximum": 500}},
        required=["user_id", "amount"],
        side_effects="write",
        latency_p99_ms=540,
        returns={"type": "object", "required": ["certificate_id", "amount"]},
    ),
    tool_spec(
        name="transfer_to_human_agents",
        description="Hand the conversation to a human agent, with a summary of the user's issue. Only when the request is outside what the tools can do.",
        properties={"summary": {"type": "string", "minLength": 1}},
        required=["summary"],
        side_effects="none",
        latency_p99_ms=90,
        returns={"type": "object"},
    ),
    tool_spec(
        name="calculate",
        description="Evaluate an arithmetic expression with numbers, + - * / and parentheses.",
        properties={"expression": {"type": "string", "minLength": 1, "description": "e.g. '2 * (162 + 364)'"}},
        required=["expression"],
        side_effects="none",
        latency_p99_ms=20,
        returns={"type": "number"},
    ),
]


def _user(state: dict[str, Any], user_id: str) -> dict[str, Any]:
    user = state["users"].get(user_id)
    if user is None:
        raise ToolError(f"user {user_id} not found")
    return user


def _reservation_of(state: dict[str, Any], reservation_id: str) -> dict[str, Any]:
    reservation = state["reservations"].get(reservation_id)
    if reservation is None:
        raise ToolError(f"reservation {reservation_id} not found")
    return reservation


def _active(state: dict[str, Any], reservation_id: str) -> dict[str, Any]:
    reservation = _reservation_of(state, reservation_id)
    if reservation.get("status") == "cancelled":
        raise ToolError(f"reservation {reservation_id} is cancelled")
    return reservation


def _flight_on(state: dict[str, Any], number: str, date: str) -> dict[str, Any]:
    flight = state["flights"].get(number)
    if flight is None:
        raise ToolError(f"flight {number} not found")
    day = flight["dates"].get(date)
    if day is None:
        raise ToolError(f"flight {number} does not fly on {date}")
    return day


def _charge(user: dict[str, Any], payment_id: str, amount: int) -> None:
    """Take `amount` from a payment method (refund when negative)."""
    method = user["payment_methods"].get(payment_id)
    if method is None:
        raise ToolError(f"payment method {payment_id} not found for user {user['user_id']}")
    if method["source"] == "credit_card" or amount == 0:
        return
    if method["source"] == "certificate" and amount < 0:
        raise ToolError("refunds cannot go to a travel certificate")
    if amount > method["amount"]:
        raise ToolError(f"{payment_id} has a balance of {method['amount']}, not enough for {amount}")
    method["amount"] -= amount
    if method["source"] == "certificate":
        del user["payment_methods"][payment_id]


def _priced_segments(
    state: dict[str, Any], flights: list[dict[str, str]], cabin: str, passengers: int, keep: dict[tuple[str, str], int]
) -> list[dict[str, Any]]:
    segments = []
    for ref in flights:
        number, date = ref["flight_number"], ref["date"]
        day = _flight_on(state, number, date)
        if (number, date) not in keep:
            if date <= TODAY:
                raise ToolError(f"flight {number} on {date} has already departed")
            if day["status"] != "available":
                raise ToolError(f"flight {number} on {date} is not available for booking (status: {day['status']})")
            if day["available_seats"][cabin] < passengers:
                raise ToolError(f"not enough {cabin} seats on {number} on {date}")
        flight = state["flights"][number]
        price = keep.get((number, date), day["prices"][cabin])
        segments.append(
            {
                "origin": flight["origin"],
                "destination": flight["destination"],
                "flight_number": number,
                "date": date,
                "price": price,
            }
        )
    return segments


def _check_route(segments: list[dict[str, Any]], origin: str, destination: str, flight_type: str) -> None:
    for a, b in itertools.pairwise(segments):
        if a["destination"] != b["origin"]:
            raise ToolError(f"flight {b['flight_number']} does not leave from {a['destination']}")
    if segments[0]["origin"] != origin:
        raise ToolError(f"the trip must start at {origin}")
    end = origin if flight_type == "round_trip" else destination
    if segments[-1]["destination"] != end:
        raise ToolError(f"the trip must end at {end}")
    if flight_type == "round_trip" and not any(s["destination"] == destination for s in segments):
        raise ToolError(f"a round trip must reach {destination}")


def _seats(state: dict[str, Any], segments: list[dict[str, Any]], cabin: str, delta: int) -> None:
    for s in segments:
        day = state["flights"][s["flight_number"]]["dates"][s["date"]]
        day["available_seats"][cabin] += delta


def get_user_details(state: dict[str, Any], user_id: str) -> dict[str, Any]:
    return _user(state, user_id)


def get_reservation_details(state: dict[str, Any], reservation_id: str) -> dict[str, Any]:
    return _reservation_of(state, reservation_id)


def search_direct_flight(state: dict[str, Any], origin: str, destination: str, date: str) -> list[dict[str, Any]]:
    found = []
    for flight in state["flights"].values():
        day = flight["dates"].get(date)
        if flight["origin"] == origin and flight["destination"] == destination and day and day["status"] == "available":
            found.append({k: v for k, v in flight.items() if k != "dates"} | {"date": date, **day})
    return found


def get_flight_status(state: dict[str, Any], flight_number: str, date: str) -> dict[str, Any]:
    day = _flight_on(state, flight_number, date)
    return {"flight_number": flight_number, "date": date, "status": day["status"]}


def book_reservation(
    state: dict[str, Any],
    user_id: str,
    origin: str,
    destination: str,
    flight_type: str,
    cabin: str,
    flights: list[dict[str, str]],
    passengers: list[dict[str, str]],
    payment_methods: list[dict[str, Any]],
    total_baggages: int,
    nonfree_baggages: int,
    insurance: str,
) -> dict[str, Any]:
    user = _user(state, user_id)
    if nonfree_baggages > total_baggages:
        raise ToolError("nonfree_baggages cannot exceed total_baggages")
    segments = _priced_segments(state, flights, cabin, len(passengers), {})
    _check_route(segments, origin, destination, flight_type)
    total = sum(s["price"] for s in segments) * len(passengers) + BAG_FEE * nonfree_baggages
    total += INSURANCE_FEE * len(passengers) if insurance == "yes" else 0
    paid = sum(p["amount"] for p in payment_methods)
    if paid != total:
        raise ToolError(f"payment amount does not add up, total price is {total}, but paid {paid}")
    for payment in payment_methods:  # every method checked before any is charged: a failure changes nothing
        method = user["payment_methods"].get(payment["payment_id"])
        if method is None:
            raise ToolError(f"payment method {payment['payment_id']} not found for user {user_id}")
        if method["source"] != "credit_card" and payment["amount"] > method["amount"]:
            raise ToolError(
                f"{payment['payment_id']} has a balance of {method['amount']}, not enough for {payment['amount']}"
            )
    for payment in payment_methods:
        _charge(user, payment["payment_id"], payment["amount"])
    reservation_id = _stable_code(user_id, str(len(state["reservations"])), json.dumps(flights, sort_keys=True))
    reservation = {
        "reservation_id": reservation_id,
        "user_id": user_id,
        "origin": origin,
        "destination": destination,
        "flight_type": flight_type,
        "cabin": cabin,
        "flights": segments,
        "passengers": passengers,
        "payment_history": payment_methods,
        "created_at": state["now"],
        "total_baggages": total_baggages,
        "nonfree_baggages": nonfree_baggages,
        "insurance": insurance,
    }
    _seats(state, segments, cabin, -len(passengers))
    state["reservations"][reservation_id] = reservation
    user["reservations"].append(reservation_id)
    return reservation


def _booked_within_a_day(reservation: dict[str, Any], now: str) -> bool:
    return datetime.fromisoformat(now) - datetime.fromisoformat(reservation["created_at"]) <= timedelta(hours=24)


def cancel_reservation(state: dict[str, Any], reservation_id: str) -> dict[str, Any]:
    reservation = _active(state, reservation_id)
    if any(s["date"] <= TODAY for s in reservation["flights"]):
        raise ToolError("a reservation with a flight already flown cannot be cancelled")
    if (
        reservation["cabin"] == "basic_economy"
        and reservation["insurance"] == "no"
        and not _booked_within_a_day(reservation, state["now"])
    ):
        raise ToolError(
            "basic economy reservations without travel insurance can only be cancelled within 24 hours of booking"
        )
    user = state["users"][reservation["user_id"]]
    refunds = []
    for payment in reservation["payment_history"]:
        method = user["payment_methods"].get(payment["payment_id"])
        if method is not None and method["source"] == "gift_card":
            method["amount"] += payment["amount"]
        refunds.append({"payment_id": payment["payment_id"], "amount": -payment["amount"]})
    reservation["payment_history"].extend(refunds)
    reservation["status"] = "cancelled"
    _seats(state, reservation["flights"], reservation["cabin"], len(reservation["passengers"]))
    return reservation


def update_reservation_flights(
    state: dict[str, Any], reservation_id: str, cabin: str, flights: list[dict[str, str]], payment_id: str
) -> dict[str, Any]:
    reservation = _active(state, reservation_id)
    old = [(s["flight_number"], s["date"]) for s in reservation["flights"]]
    new = [(f["flight_number"], f["date"]) for f in flights]
    if reservation["cabin"] == "basic_economy" and new != old:
        raise ToolError("basic economy flights cannot be modified")
    if new == old and cabin == reservation["cabin"]:
        raise ToolError("nothing to change: the flights and cabin are the same")
    keep = (
        {(s["flight_number"], s["date"]): s["price"] for s in reservation["flights"]}
        if cabin == reservation["cabin"]
        else {}
    )
    passengers = len(reservation["passengers"])
    segments = _priced_segments(state, flights, cabin, passengers, keep)
    _check_route(segments, reservation["origin"], reservation["destination"], reservation["flight_type"])
    difference = (sum(s["price"] for s in segments) - sum(s["price"] for s in reservation["flights"])) * passengers
    user = state["users"][reservation["user_id"]]
    _charge(user, payment_id, difference)
    _seats(state, reservation["flights"], reservation["cabin"], passengers)
    _seats(state, segments, cabin, -passengers)
    reservation["flights"] = segments
    reservation["cabin"] = cabin
    if difference:
        reservation["payment_history"].append({"payment_id": payment_id, "amount": difference})
    return reservation


def update_reservation_baggages(
    state: dict[str, Any], reservation_id: str, total_baggages: int, nonfree_baggages: int, payment_id: str
) -> dict[str, Any]:
    reservation = _active(state, reservation_id)
    if total_baggages < reservation["total_baggages"]:
        raise ToolError(f"checked bags cannot be removed (the reservation has {reservation['total_baggages']})")
    if nonfree_baggages > total_baggages:
        raise ToolError("nonfree_baggages cannot exceed total_baggages")
    if nonfree_baggages < reservation["nonfree_baggages"]:
        raise ToolError(f"nonfree_baggages cannot go down (the reservation has {reservation['nonfree_baggages']})")
    fee = BAG_FEE * (nonfree_baggages - reservation["nonfree_baggages"])
    _charge(state["users"][reservation["user_id"]], payment_id, fee)
    reservation["total_baggages"] = total_baggages
    reservation["nonfree_baggages"] = nonfree_baggages
    if fee:
        reservation["payment_history"].append({"payment_id": payment_id, "amount": fee})
    return reservation


def send_certificate(state: dict[str, Any], user_id: str, amount: int) -> dict[str, Any]:
    user = _user(state, user_id)
    certificate_id = f"certificate_{_stable_digits(user_id, str(len(user['payment_methods'])), str(amount))}"
    user["payment_methods"][certificate_id] = {"source": "certificate", "amount": amount, "id": certificate_id}
    return {"certificate_id": certificate_id, "user_id": user_id, "amount": amount}


def transfer_to_human_agents(state: dict[str, Any], summary: str) -> dict[str, Any]:
    return {"status": "transferred", "queue": "airline-desk", "summary": summary}


_OPERATORS: dict[type, Any] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}


def _evaluate(node: ast.AST) -> float:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float) and not isinstance(node.value, bool):
        return float(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        return float(_OPERATORS[type(node.op)](_evaluate(node.left), _evaluate(node.right)))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _OPERATORS:
        return float(_OPERATORS[type(node.op)](_evaluate(node.operand)))
    raise ToolError("only numbers, + - * / and parentheses are allowed")


def calculate(state: dict[str, Any], expression: str) -> float:
    try:
        tree = ast.parse(expression, mode="eval")
        return round(_evaluate(tree.body), 2)
    except SyntaxError:
        raise ToolError(f"cannot parse {expression!r}") from None
    except ZeroDivisionError:
        raise ToolError("division by zero") from None


HANDLERS: dict[str, Handler] = {
    "get_user_details": get_user_details,
    "get_reservation_details": get_reservation_details,
    "search_direct_flight": search_direct_flight,
    "get_flight_status": get_flight_status,
    "book_reservation": book_reservation,
    "cancel_reservation": cancel_reservation,
    "update_reservation_flights": update_reservation_flights,
    "update_reservation_baggages": update_reservation_baggages,
    "send_certificate": send_certificate,
    "transfer_to_human_agents": transfer_to_human_agents,
    "calculate": calculate,
}


class AirlineEnvironment(Environment):
    name = "airline"

    def __init__(self) -> None:
        self._states: dict[int, bytes] = {}

    def tool_specs(self) -> list[dict[str, Any]]:
        return copy.deepcopy(SPECS)

    def handlers(self) -> Mapping[str, Handler]:
        return HANDLERS

    def reset(self, seed: int) -> dict[str, Any]:
        if seed not in self._states:
            self._states[seed] = orjson.dumps(generate_state(seed))
        return orjson.loads(self._states[seed])
