"""Our retry policy for provider calls: exponential backoff with full jitter.

The SDKs' own retries are switched off (google-genai) or lowered (fal-client), so this is the
one place that decides how often and how long a provider call is retried.
"""

import logging
import math
import random
import time
from collections.abc import Callable
from typing import Protocol, TypeVar

from generation.providers.base import TransientProviderError

logger = logging.getLogger(__name__)

T = TypeVar("T")


class _Uniform(Protocol):
    def uniform(self, a: float, b: float) -> float: ...


def backoff_delay(attempt: int, *, base: float, cap: float, rng: _Uniform = random) -> float:
    """Full jitter: uniform over [0, min(cap, base * 2**attempt)] (attempt counts from 0)."""
    return rng.uniform(0, min(cap, base * 2**attempt))


def retry_sleep(
    error: TransientProviderError, attempt: int, *, base: float, cap: float, rng: _Uniform = random
) -> float:
    """How long to wait before the next try: never less than the server's own retry hint."""
    return max(error.retry_after or 0.0, backoff_delay(attempt, base=base, cap=cap, rng=rng))


def call_with_retries(
    fn: Callable[[], T],
    *,
    attempts: int,
    base: float,
    cap: float,
    max_wait: float = math.inf,
    sleep: Callable[[float], None] = time.sleep,
    on_retry: Callable[[int, TransientProviderError, float], None] | None = None,
) -> T:
    """Call `fn` up to `attempts` times while it raises TransientProviderError.

    PermanentProviderError (and anything else) propagates at once. When the server asks for a
    wait longer than `max_wait`, the error is raised right away instead: holding a worker for
    minutes is worse than letting the caller reschedule (the error carries `retry_after`).
    `on_retry(attempt, error, delay)` is called before each sleep; `attempt` counts from 1.
    """
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    for attempt in range(attempts):
        try:
            return fn()
        except TransientProviderError as error:
            if attempt + 1 >= attempts or (error.retry_after or 0.0) > max_wait:
                raise
            delay = retry_sleep(error, attempt, base=base, cap=cap)
            if on_retry is not None:
                on_retry(attempt + 1, error, delay)
            else:
                logger.info(
                    "provider call failed (%s); retry %d/%d in %.2fs",
                    error.message,
                    attempt + 1,
                    attempts - 1,
                    delay,
                )
            sleep(delay)
    raise AssertionError("unreachable")  # the loop either returns or raises
