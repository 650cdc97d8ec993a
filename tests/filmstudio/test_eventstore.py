"""filmstudio.eventstore: ids, a lost Redis, the batched replay log."""

import uuid

import pytest
from django_eventstream.models import Event

from filmstudio import eventstore

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
