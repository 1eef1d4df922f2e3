"""Exponential backoff with jitter for send retries."""

from __future__ import annotations

import random

from .config import RetryPolicy


def retry_delay_s(policy: RetryPolicy, attempt: int, rng: random.Random | None = None) -> float:
    """Delay before attempt ``attempt + 1`` after ``attempt`` failed attempts (``attempt`` >= 1).

    ``min(max_delay_s, initial_delay_s * multiplier ** (attempt - 1))`` scaled by a uniform factor
    in ``[1 - jitter, 1 + jitter]`` (and never above ``max_delay_s``).
    """
    if attempt < 1:
        raise ValueError("attempt counts from 1")
    base = min(policy.max_delay_s, policy.initial_delay_s * policy.multiplier ** (attempt - 1))
    factor = 1.0 + (rng or random).uniform(-policy.jitter, policy.jitter)
    return max(0.0, min(policy.max_delay_s, base * factor))
