"""filmstudio.eventstore: ids, a lost Redis, the batched replay log."""

import json
import time
import uuid

import pytest
import redis
from django.db import connection
from django_eventstream.models import Event
from redis.backoff import NoBackoff
from redis.retry import Retry

from filmstudio import eventstore
from filmstudio.support import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def channel():
    name = f"test-{uuid.uuid4().hex}"
    yield name
    client, _ = eventstore._redis()
    client.delete(eventstore._counter_key(name), eventstore._recent_key(name))


def lose_redis_keys(channel: str) -> None:
    client, _ = eventstore._redis()
    client.delete(eventstore._counter_key(channel), eventstore._recent_key(channel))


def stored(channel: str) -> list[int]:
    return list(Event.objects.filter(channel=channel).order_by("eid").values_list("eid", flat=True))


def test_a_lost_counter_resumes_above_ids_another_process_still_holds(channel, monkeypatch):
    """Redis restarts while a worker holds this step's ids unflushed; a web process restores
    the counter first (a browser reconnects): the worker's next ids are still new ones."""
    for n in range(5):  # earlier steps: in the table
        eventstore.send_event(channel, "x", {"n": n})
    eventstore.flush()
    for n in range(5, 8):  # this step: in the worker's buffer only
        eventstore.send_event(channel, "x", {"n": n})
    worker = eventstore._buffer
    held = worker.highest(channel)
    lose_redis_keys(channel)
    monkeypatch.setattr(eventstore, "_buffer", eventstore._Buffer())  # the web process
    web_current = eventstore.EventStore().get_current_id(channel)
    monkeypatch.setattr(eventstore, "_buffer", worker)
    again = eventstore.send_event(channel, "x", {"n": 8})
    assert web_current > held and again > held
    assert eventstore.flush() == 4
    assert len(stored(channel)) == 9
    # A client whose Last-Event-ID is the worker's last id before the restart gets the new one.
    replay = eventstore.EventStore().get_events(channel, held)
    assert [e.id for e in replay] == [again]


def test_redis_down_stores_each_event_in_the_table_and_redis_gets_them_when_back(
    channel, monkeypatch, caplog
):
    for n in range(3):
        eventstore.send_event(channel, "x", {"n": n})
    eventstore.flush()
    before = eventstore.EventStore().get_current_id(channel)
    with monkeypatch.context() as down:
        fake = redis.Redis(host="127.0.0.1", port=1, retry=Retry(NoBackoff(), 0))
        down.setattr(eventstore, "_client", fake)
        down.setattr(eventstore, "_script", fake.register_script(eventstore._APPEND))
        outage = [eventstore.send_event(channel, "x", {"n": n}) for n in (3, 4)]
        assert len(stored(channel)) == 5  # stored at once, nothing buffered
        assert eventstore.flush() == 0
    assert before < outage[0] < outage[1]
    assert "Redis is down" in caplog.text
    # Redis is back (with its keys): the counter goes on above the outage's ids, and a client
    # replaying from before the outage gets everything in order, from Redis.
    after = eventstore.send_event(channel, "x", {"n": 5})
    assert after > outage[1]
    replay = eventstore.EventStore().get_events(channel, before)
    assert [json.loads(e.data)["n"] for e in replay] == [3, 4, 5]
    assert [e.id for e in replay] == [*outage, after]
    assert eventstore.flush() == 1
    assert stored(channel)[-3:] == [*outage, after]


def test_the_timer_thread_runs_only_with_a_flush_interval_and_stops_at_0(channel, settings):
    assert settings.EVENTS_FLUSH_INTERVAL == 0  # tests/conftest.py: no flush behind a test's back
    eventstore.send_event(channel, "x", {"n": 0})
    assert eventstore._buffer.timer is None
    settings.EVENTS_FLUSH_INTERVAL = 0.2
    eventstore.send_event(channel, "x", {"n": 1})
    wait_for(lambda: len(stored(channel)) == 2, timeout=5)
    settings.EVENTS_FLUSH_INTERVAL = 0
    wait_for(lambda: eventstore._buffer.timer is None, timeout=5)


def test_the_exit_flush_follows_its_setting(channel, settings):
    eventstore.flush()
    eventstore.send_event(channel, "x", {"n": 0})
    settings.EVENTS_FLUSH_AT_EXIT = False
    eventstore._flush_at_exit()
    assert stored(channel) == []
    settings.EVENTS_FLUSH_AT_EXIT = True
    eventstore._flush_at_exit()
    assert len(stored(channel)) == 1


def test_the_request_end_flush_leaves_a_connection_kept_between_requests(channel):
    eventstore.flush()
    connection.ensure_connection()
    raw = connection.connection
    eventstore._flush_quietly()  # nothing buffered: no database work, nothing closed
    assert connection.connection is raw
    kept = connection.close_at
    connection.close_at = None  # as with CONN_MAX_AGE=None: kept between requests
    try:
        eventstore.send_event(channel, "x", {"n": 0})
        eventstore._flush_quietly()
        assert len(stored(channel)) == 1 and connection.connection is raw
        connection.close_at = time.monotonic()  # CONN_MAX_AGE=0: closed after the flush
        eventstore.send_event(channel, "x", {"n": 1})
        eventstore._flush_quietly()
        assert connection.connection is None
        assert len(stored(channel)) == 2
    finally:
        connection.close_at = kept
