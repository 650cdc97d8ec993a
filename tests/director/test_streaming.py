"""The relay between a turn's thread and its HTTP response."""

import asyncio
import threading

import pytest
import redis

from director.models import DirectorMessage, DirectorSession, DirectorTurn
from director.selectors import session_history
from director.streaming import KEEPALIVE, TurnEvents, TurnRelay
from filmstudio import eventstore


def produce(relay: TurnRelay, chunks: list[str], gate: threading.Event) -> threading.Thread:
    def work():
        for chunk in chunks:
            gate.wait(5)
            relay.put(chunk)
        relay.close()

    thread = threading.Thread(target=work)
    thread.start()
    return thread


def test_a_blocking_reader_gets_every_chunk_in_order():
    relay, gate = TurnRelay(), threading.Event()
    gate.set()
    thread = produce(relay, ["a", "b", "c"], gate)
    assert "".join(relay) == "abc"
    thread.join()


def test_an_async_reader_gets_chunks_as_they_come():
    relay, gate = TurnRelay(), threading.Event()

    async def read():
        stream = relay.stream()
        thread = produce(relay, ["a", "b"], gate)
        gate.set()
        chunks = [chunk async for chunk in stream]
        thread.join()
        return chunks

    assert "".join(asyncio.run(read())) == "ab"


def test_quiet_streams_get_keep_alive_comments(settings):
    settings.DIRECTOR_KEEPALIVE = 0.05
    relay, gate = TurnRelay(), threading.Event()
    thread = produce(relay, ["done"], gate)

    async def read():
        stream = relay.stream()
        first = await anext(stream)
        gate.set()
        return [first] + [chunk async for chunk in stream]

    chunks = asyncio.run(read())
    thread.join()
    assert chunks[0] == KEEPALIVE
    assert chunks[-1] == "done"


def test_a_reader_that_leaves_does_not_stop_the_producer():
    relay, gate = TurnRelay(), threading.Event()

    async def leave_early():
        stream = relay.stream()
        relay.put("first")
        assert await anext(stream) == "first"
        await stream.aclose()  # what Django does when the client disconnects

    asyncio.run(leave_early())
    gate.set()
    produce(relay, ["second", "third"], gate).join()
    assert "".join(relay) == "firstsecondthird"  # a later reader still gets everything


@pytest.mark.django_db
def test_history_keeps_whole_turns_only(user, settings):
    session = DirectorSession.objects.create(user=user, page="dashboard")
    turns = [DirectorTurn.objects.create(session=session, page="dashboard") for _ in range(4)]
    for turn in turns:
        for role in ("user", "assistant", "tool", "assistant"):
            DirectorMessage.objects.create(session=session, turn=turn, role=role, text=role)

    history = session_history(session, before=turns[3], turns=2)
    assert [m.turn_id for m in history] == [turns[1].pk] * 4 + [turns[2].pk] * 4
    assert [m.role for m in history[:4]] == ["user", "assistant", "tool", "assistant"]
    assert session_history(session, before=turns[3], turns=0) == []


@pytest.mark.django_db
def test_a_turn_event_costs_one_redis_round_trip_and_carries_the_id_it_was_stored_with(
    monkeypatch,
):
    commands = []
    execute = redis.Redis.execute_command

    def counted(self, *args, **options):
        commands.append(args[0])
        return execute(self, *args, **options)

    relay = TurnRelay()
    turn = TurnEvents(session_id=10**9, relay=relay)
    monkeypatch.setattr(redis.Redis, "execute_command", counted)
    first = turn._publish("message", {"delta": "a"})
    commands.clear()
    eventstore.send_event(turn.channel, "message", {"delta": "elsewhere"})  # another sender
    second = turn._publish("message", {"delta": "b"})
    monkeypatch.undo()
    assert len(commands) == 2  # the other sender's and this one's: a script call each
    ids = [int(e.id) for e in eventstore.EventStore().get_events(turn.channel, 0)]
    assert second == f"{turn.channel}:{ids[-1]}" and first == f"{turn.channel}:{ids[0]}"
    client, _ = eventstore._redis()
    client.delete(eventstore._counter_key(turn.channel), eventstore._recent_key(turn.channel))
