"""What the airline and the coding runs share."""

from __future__ import annotations

import random
import string

_ALNUM = string.ascii_letters + string.digits


def new_call_id(rng: random.Random) -> str:
    """An OpenAI-style tool call id drawn from the run's own random source."""
    return "call_" + "".join(rng.choice(_ALNUM) for _ in range(24))
