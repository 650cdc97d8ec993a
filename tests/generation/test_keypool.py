"""Key pool, rate limiter (real Redis) and the retry policy."""

import time

import django_rq
import pytest

from generation.providers.base import PermanentProviderError, TransientProviderError
from generation.providers.keypool import REDIS_PREFIX, KeyPool, RateLimiter, key_fingerprint
from generation.providers.retry import backoff_delay, call_with_retries

KEYS = ["test-key-alpha-0001", "test-key-bravo-0002", "test-key-charlie-0003"]


def _flush(redis) -> None:
    names = list(redis.scan_iter(f"{REDIS_PREFIX}:*"))
    if names:
        redis.delete(*names)


@pytest.fixture
def redis():
    connection = django_rq.get_connection("default")
    _flush(connection)
    yield connection
    _flush(connection)


# ------------------------------------------------------------------ KeyPool


def test_it_cycles_keys_round_robin(redis):
    pool = KeyPool("test", KEYS, redis)

    picks = [pool.acquire() for _ in range(6)]

    assert picks[:3] == picks[3:]
    assert sorted(picks[:3]) == sorted(KEYS)


def test_workers_share_the_rotation(redis):
    first, second = KeyPool("test", KEYS, redis), KeyPool("test", KEYS, redis)

    picks = [first.acquire(), second.acquire(), first.acquire()]

    assert sorted(picks) == sorted(KEYS)


def test_it_skips_a_cooling_key(redis):
    pool = KeyPool("test", KEYS, redis)
    pool.cool(KEYS[0], 5)

    picks = {pool.acquire() for _ in range(6)}

    assert picks == set(KEYS[1:])
    assert 4.5 < pool.cooling_for(KEYS[0]) <= 5
    assert pool.cooling_for(KEYS[1]) == 0


def test_all_keys_cooling_raises_transient_with_the_shortest_cooldown(redis):
    pool = KeyPool("test", KEYS[:2], redis)
    pool.cool(KEYS[0], 9)
    pool.cool(KEYS[1], 2)

    with pytest.raises(TransientProviderError) as raised:
        pool.acquire()

    assert 1.5 < raised.value.retry_after <= 2


def test_a_key_is_usable_again_after_its_cooldown(redis):
    pool = KeyPool("test", KEYS[:1], redis)
    pool.cool(KEYS[0], 0.05)

    deadline = time.monotonic() + 2
    while pool.cooling_for(KEYS[0]) > 0 and time.monotonic() < deadline:
        time.sleep(0.01)

    assert pool.acquire() == KEYS[0]


def test_redis_holds_fingerprints_not_keys(redis):
    pool = KeyPool("test", KEYS, redis)
    pool.acquire()
    pool.cool(KEYS[1], 5)

    stored = [
        (name.decode(), redis.dump(name) or b"") for name in redis.scan_iter(f"{REDIS_PREFIX}:*")
    ]

    assert any(key_fingerprint(KEYS[1]) in name for name, _ in stored)
    for name, value in stored:
        for key in KEYS:
            assert key not in name
            assert key.encode() not in value


def test_snapshot_reports_keys_by_fingerprint(redis):
    pool = KeyPool("test", KEYS[:2], redis)
    pool.cool(KEYS[1], 5)

    states = {state.fingerprint: state.cooling_for for state in pool.snapshot()}

    assert states[key_fingerprint(KEYS[0])] == 0
    assert states[key_fingerprint(KEYS[1])] > 4


def test_it_refuses_an_empty_pool(redis):
    with pytest.raises(ValueError):
        KeyPool("test", ["", ""], redis)


def test_the_error_names_no_key(redis):
    pool = KeyPool("test", KEYS, redis)
    for key in KEYS:
        pool.cool(key, 5)

    with pytest.raises(TransientProviderError) as raised:
        pool.acquire()

    assert not any(key in str(raised.value) for key in KEYS)


# ------------------------------------------------------------------ RateLimiter


def test_it_grants_rpm_requests_per_window(redis):
    limiter = RateLimiter("test", 2, redis, window=0.5)

    waits = [limiter.try_acquire() for _ in range(3)]

    assert waits[:2] == [0, 0]
    assert 0 < waits[2] <= 0.5


def test_it_refuses_without_blocking(redis):
    limiter = RateLimiter("test", 1, redis, window=0.5)
    limiter.acquire(block=False)

    with pytest.raises(TransientProviderError) as raised:
        limiter.acquire(block=False)

    assert 0 < raised.value.retry_after <= 0.5


def test_it_waits_for_a_free_slot(redis):
    limiter = RateLimiter("test", 2, redis, window=0.4)
    started = time.monotonic()

    for _ in range(3):
        limiter.acquire()

    assert 0.3 < time.monotonic() - started < 1.5


def test_it_gives_up_after_the_timeout(redis):
    limiter = RateLimiter("test", 1, redis, window=5)
    limiter.acquire()

    with pytest.raises(TransientProviderError):
        limiter.acquire(timeout=0.05)


def test_limiters_of_the_same_name_share_the_window(redis):
    RateLimiter("test", 1, redis, window=5).acquire()

    assert RateLimiter("test", 1, redis, window=5).try_acquire() > 0
    assert RateLimiter("other", 1, redis, window=5).try_acquire() == 0


# ------------------------------------------------------------------ retry policy


class _MaxRandom:
    def uniform(self, low: float, high: float) -> float:
        return high


def test_backoff_is_full_jitter_capped():
    assert backoff_delay(0, base=1, cap=30, rng=_MaxRandom()) == 1
    assert backoff_delay(3, base=1, cap=30, rng=_MaxRandom()) == 8
    assert backoff_delay(10, base=1, cap=30, rng=_MaxRandom()) == 30
    assert all(0 <= backoff_delay(4, base=1, cap=30) <= 16 for _ in range(100))


def _flaky(failures: list[Exception]):
    calls = []

    def fn() -> str:
        calls.append(1)
        if failures:
            raise failures.pop(0)
        return "ok"

    return fn, calls


def test_it_retries_transient_errors_then_succeeds():
    fn, calls = _flaky([TransientProviderError("503"), TransientProviderError("503")])
    sleeps: list[float] = []

    assert call_with_retries(fn, attempts=3, base=0.01, cap=1, sleep=sleeps.append) == "ok"
    assert len(calls) == 3
    assert len(sleeps) == 2


def test_it_honors_the_servers_retry_hint():
    fn, _ = _flaky([TransientProviderError("429", retry_after=7)])
    sleeps: list[float] = []

    call_with_retries(fn, attempts=2, base=0.01, cap=1, sleep=sleeps.append)

    assert sleeps == [7]


def test_it_raises_the_last_error_when_attempts_run_out():
    fn, calls = _flaky([TransientProviderError(f"try {n}") for n in range(5)])

    with pytest.raises(TransientProviderError, match="try 2"):
        call_with_retries(fn, attempts=3, base=0.01, cap=1, sleep=lambda _: None)
    assert len(calls) == 3


def test_permanent_errors_are_not_retried():
    fn, calls = _flaky([PermanentProviderError("400 bad request")])

    with pytest.raises(PermanentProviderError):
        call_with_retries(fn, attempts=5, base=0.01, cap=1, sleep=lambda _: None)
    assert len(calls) == 1


def test_a_hint_longer_than_max_wait_is_handed_to_the_caller():
    fn, calls = _flaky([TransientProviderError("429", retry_after=600)])
    sleeps: list[float] = []

    with pytest.raises(TransientProviderError) as raised:
        call_with_retries(fn, attempts=5, base=0.01, cap=1, max_wait=60, sleep=sleeps.append)

    assert raised.value.retry_after == 600
    assert len(calls) == 1
    assert sleeps == []
