"""API key rotation and per-model request limits, shared by every worker through Redis.

Keys never reach Redis, logs or exception messages: Redis only ever sees a short fingerprint.
"""

import hashlib
import math
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from redis import Redis

from generation.providers.base import TransientProviderError

REDIS_PREFIX = "filmstudio:providers"


def key_fingerprint(key: str) -> str:
    """A short, stable, non-reversible name for an API key (for Redis, logs and dashboards)."""
    return hashlib.sha256(key.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class KeyState:
    fingerprint: str
    cooling_for: float  # seconds; 0 when the key is usable


# The pool's next turn (KEYS[1], a counter every worker shares) and the first key from there on
# that is not cooling down (KEYS[2..], each key's cooldown: PTTL is -2 without one): its
# position from 1, or minus the shortest cooldown in milliseconds when every key is cooling.
_NEXT_KEY = """
local start = redis.call('INCR', KEYS[1]) - 1
local n = #KEYS - 1
local shortest = nil
for i = 0, n - 1 do
  local position = (start + i) % n + 1
  local ms = redis.call('PTTL', KEYS[position + 1])
  if ms <= 0 then return position end
  if shortest == nil or ms < shortest then shortest = ms end
end
return -shortest
"""


class KeyPool:
    """Round-robin over `keys`; a key that was rate limited cools down and is skipped."""

    def __init__(self, name: str, keys: Sequence[str], redis: Redis):
        self.name = name
        self._keys = list(dict.fromkeys(key for key in keys if key))
        if not self._keys:
            raise ValueError(f"key pool {name!r} has no keys")
        self._redis = redis
        self._cursor = f"{REDIS_PREFIX}:keypool:{name}:cursor"
        self._next_script = redis.register_script(_NEXT_KEY)

    def __len__(self) -> int:
        return len(self._keys)

    def _cool_name(self, key: str) -> str:
        return f"{REDIS_PREFIX}:keypool:{self.name}:cool:{key_fingerprint(key)}"

    def _cooling_ms(self, keys: Sequence[str]) -> list[int]:
        pipe = self._redis.pipeline(transaction=False)
        for key in keys:
            pipe.pttl(self._cool_name(key))
        # PTTL answers -2 for a missing key: that key is not cooling.
        return [max(int(ms), 0) for ms in pipe.execute()]

    def acquire(self) -> str:
        """The next key that is not cooling down, in an order every worker shares (one round
        trip to Redis: the turn and the keys' cooldowns in one script)."""
        cool_names = [self._cool_name(key) for key in self._keys]
        found = int(self._next_script(keys=[self._cursor, *cool_names]))
        if found > 0:
            return self._keys[found - 1]
        raise TransientProviderError(
            f"all {len(self._keys)} API keys of {self.name} are cooling down",
            retry_after=-found / 1000,
        )

    def cool(self, key: str, seconds: float) -> None:
        """Skip `key` for `seconds` (the server's retry delay), in every worker."""
        self._redis.set(self._cool_name(key), "1", px=max(1, math.ceil(seconds * 1000)))

    def cooling_for(self, key: str) -> float:
        return self._cooling_ms([key])[0] / 1000

    def snapshot(self) -> list[KeyState]:
        """Every key's state, by fingerprint (for dashboards)."""
        cooling = self._cooling_ms(self._keys)
        return [
            KeyState(key_fingerprint(key), ms / 1000)
            for key, ms in zip(self._keys, cooling, strict=True)
        ]

    def clear(self) -> None:
        self._redis.delete(self._cursor, *(self._cool_name(key) for key in self._keys))


# Sliding window log: timestamps of granted requests in a sorted set. Redis' own clock is used
# so workers on machines with skewed clocks agree. Answers 0 when a slot was taken, else the
# milliseconds until the oldest request leaves the window.
_SLIDING_WINDOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], window)
  return 0
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return math.max(1, tonumber(oldest[2]) + window - now)
"""


class RateLimiter:
    """At most `rpm` requests per `window` seconds (a minute by default), across all workers."""

    def __init__(
        self,
        name: str,
        rpm: int,
        redis: Redis,
        *,
        window: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
    ):
        if rpm < 1:
            raise ValueError("rpm must be at least 1")
        self.name = name
        self.rpm = rpm
        self.window = window
        self._redis = redis
        self._sleep = sleep
        self._key = f"{REDIS_PREFIX}:ratelimit:{name}"
        self._script = redis.register_script(_SLIDING_WINDOW)

    def try_acquire(self) -> float:
        """Take a slot if one is free: 0.0, else the seconds until one frees up."""
        window_ms = max(1, math.ceil(self.window * 1000))
        wait_ms = self._script(keys=[self._key], args=[window_ms, self.rpm, uuid.uuid4().hex])
        return int(wait_ms) / 1000

    def acquire(self, *, block: bool = True, timeout: float | None = None) -> None:
        """Wait for a slot; TransientProviderError (with retry_after) when none comes in time."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait = self.try_acquire()
            if wait == 0:
                return
            if not block or (deadline is not None and time.monotonic() + wait > deadline):
                raise TransientProviderError(
                    f"{self.name}: limit of {self.rpm} requests per {self.window:g}s reached",
                    retry_after=wait,
                )
            self._sleep(wait)

    def clear(self) -> None:
        self._redis.delete(self._key)
