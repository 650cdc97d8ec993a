"""Live events without SQL per event: published through Redis at once, kept for Last-Event-ID
replay in Redis and, in one batched write per step, in the database.

`send_event(channel, type, data)` is one Redis round trip (a script): the channel's counter
gives the event its id, the event joins the channel's recent events (a sorted set by id, the
last RECENT_KEEP for a day) and goes out on django-eventstream's pub/sub channel, which every
web process's listener relays to its open streams. The event is also buffered in this process
and written to django-eventstream's Event table by `flush()`, all buffered events in one INSERT:
at the end of every worker task (`generation.worker.FlushesEvents`), of every web request, and
at the latest EVENTS_FLUSH_INTERVAL after it was sent (a timer thread, for what runs outside both:
director turns; 0 = no timer), and when the process exits (EVENTS_FLUSH_AT_EXIT). Tests turn both
off (tests/conftest.py) and call `flush()`.

`EventStore` is the EVENTSTREAM_STORAGE_CLASS: replay reads the recent events from Redis and
what Redis no longer has (flushed, restarted, trimmed) from the table, so a replay survives
losing Redis. A channel whose counter is gone (a new channel, Redis flushed or restarted) starts
again RESTART_GAP above the highest id this process knows of (the table, its own buffer): other
processes may hold newer ids not in the table yet (a step's events until it ends, at most
BUFFER_LIMIT each), and an id handed out again would be dropped from the table and skipped by a
client whose Last-Event-ID is the older event's. Ids have gaps then; replay only asks for ids
above the client's last one. The table keeps django-eventstream's format (the data JSON-encoded
once more), so events stored before this module replay alike.

Redis down: the event is written to the table at once instead, its id the channel's highest
there (or this process's) plus RESTART_GAP, under an advisory lock (so SQL per event only
during an outage; nothing can be published then). Once Redis answers again this process adds
those events to the channel's recent events, publishes them and raises the counter above them
(at its next event or flush).

What it gives up: events still buffered when a process dies without flushing (a killed work
horse) are in Redis only until the watchdog's sweep copies them (`persist_recent`, the projects at
work; lost if Redis goes before that, and a killed web process's director turns are not copied);
ids stay unique across a Redis restart as long as fewer than RESTART_GAP of one channel's ids
are held unflushed then.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from datetime import timedelta

import redis
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.core.signals import request_finished
from django.db import connection, transaction
from django.db.models import Max
from django.utils import timezone
from django_eventstream.event import Event
from django_eventstream.models import Event as StoredEvent
from django_eventstream.storage import EventDoesNotExist, StorageBase

logger = logging.getLogger(__name__)

PUBSUB_CHANNEL = "events_channel"  # django-eventstream's RedisListener subscribes to it
RECENT_KEEP = 500  # events per channel kept in Redis (a replay reads at most 100 at a time)
RECENT_TTL = 24 * 3600  # seconds; django-eventstream's own event timeout
TABLE_KEEP = timedelta(days=1)  # older rows are deleted, at most once per TRIM_EVERY
TRIM_EVERY = 600.0
BUFFER_LIMIT = 10_000  # a database that stays away: the oldest buffered events are dropped
# A lost counter resumes this far above the highest id known: more than all the ids of one channel
# that processes can hold unflushed at once (each buffers at most BUFFER_LIMIT).
RESTART_GAP = 2 * BUFFER_LIMIT
INSERT_ROWS = 1000  # rows per INSERT statement (PostgreSQL takes at most 65535 parameters)
EVENT_LOCK = 0x4576  # advisory lock class of the ids given while Redis is down (with the channel)

# KEYS: counter, recent. ARGV: floor ('' = unknown), event JSON, keep, ttl, pub/sub channel
# ('' = do not publish), message prefix, message suffix (the id goes between them), the id the
# event already has ('' = the next; the counter is raised to it if lower).
# Returns the event's id, or -1 when the counter is gone and no floor was given.
_APPEND = """
local id
if ARGV[8] ~= '' then
  id = tonumber(ARGV[8])
  if tonumber(redis.call('GET', KEYS[1]) or '0') < id then redis.call('SET', KEYS[1], id) end
else
  if redis.call('EXISTS', KEYS[1]) == 0 then
    if ARGV[1] == '' then return -1 end
    redis.call('SET', KEYS[1], ARGV[1])
  end
  id = redis.call('INCR', KEYS[1])
end
redis.call('ZADD', KEYS[2], id, id .. ' ' .. ARGV[2])
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -tonumber(ARGV[3]) - 1)
redis.call('EXPIRE', KEYS[2], ARGV[4])
if ARGV[5] ~= '' then
  redis.call('PUBLISH', ARGV[5], ARGV[6] .. id .. ARGV[7])
end
return id
"""


def _counter_key(channel: str) -> str:
    return f"filmstudio:events:{channel}:id"


def _recent_key(channel: str) -> str:
    return f"filmstudio:events:{channel}:recent"


@dataclass
class _Pending:
    channel: str
    type: str
    data: str  # the event's data as JSON
    eid: int


class _Buffer:
    """This process's events not in the table yet. A forked child starts with an empty one."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.items: list[_Pending] = []
        self.unsynced: list[_Pending] = []  # stored while Redis was down, not in Redis yet
        self.oldest = 0.0  # monotonic time of the oldest buffered event
        self.timer: threading.Thread | None = None
        self.last_trim = time.monotonic()

    def add(self, item: _Pending) -> None:
        with self.lock:
            if not self.items:
                self.oldest = time.monotonic()
            self.items.append(item)
            if len(self.items) > BUFFER_LIMIT:
                dropped = len(self.items) - BUFFER_LIMIT
                del self.items[:dropped]
                logger.warning("event buffer full: %s events dropped from the replay log", dropped)
            if self.timer is None and settings.EVENTS_FLUSH_INTERVAL > 0:
                self.timer = threading.Thread(target=self._tick, name="event-flush", daemon=True)
                self.timer.start()

    def highest(self, channel: str) -> int:
        with self.lock:
            return max((i.eid for i in self.items if i.channel == channel), default=0)

    def take(self) -> list[_Pending]:
        with self.lock:
            items, self.items = self.items, []
            return items

    def give_back(self, items: list[_Pending]) -> None:
        with self.lock:
            self.items[:0] = items
            del self.items[: max(0, len(self.items) - BUFFER_LIMIT)]

    def _tick(self) -> None:
        """The fallback flush: events sent where no task or request ends soon. Ends when
        EVENTS_FLUSH_INTERVAL becomes 0."""
        while (interval := settings.EVENTS_FLUSH_INTERVAL) > 0:
            time.sleep(interval / 4)
            with self.lock:
                due = self.items and time.monotonic() - self.oldest >= interval
            if due:
                try:
                    flush()
                finally:
                    connection.close()  # this thread's own connection: not held between ticks
        with self.lock:
            self.timer = None


_buffer = _Buffer()


def _after_fork() -> None:
    global _buffer  # a forked child must not flush its parent's events again
    _buffer = _Buffer()


os.register_at_fork(after_in_child=_after_fork)

_client: redis.Redis | None = None
_script = None


def _redis():
    global _client, _script  # one client and script per process, made lazily
    if _client is None:
        _client = redis.Redis(**settings.EVENTSTREAM_REDIS)
        _script = _client.register_script(_APPEND)
    return _client, _script


def _restart_at(channel: str) -> int:
    """Where a lost counter resumes: RESTART_GAP above the highest id this process knows of."""
    stored = StoredEvent.objects.filter(channel=channel).aggregate(top=Max("eid"))["top"] or 0
    return max(stored, _buffer.highest(channel)) + RESTART_GAP


def _script_args(channel: str, event_type: str, data: str, publish: bool, eid: str) -> list:
    body = json.dumps({"type": event_type, "data": data})
    prefix = json.dumps({"channel": channel, "event_type": event_type, "data": data})
    args = [body, RECENT_KEEP, RECENT_TTL, PUBSUB_CHANNEL if publish else ""]
    return [*args, prefix[:-1] + ', "pub_id": "', '"}', eid]


def append(channel: str, event_type: str, data: str, *, publish: bool) -> int:
    """Give the event its id, keep it for replay, publish it (`publish`); returns the id."""
    try:
        _, script = _redis()
        if _buffer.unsynced:
            _resync(script)
        args = _script_args(channel, event_type, data, publish, "")
        keys = [_counter_key(channel), _recent_key(channel)]
        event_id = int(script(keys=keys, args=["", *args]))
        if event_id < 0:  # a new channel, or Redis lost its counter: go on above any id in use
            event_id = int(script(keys=keys, args=[_restart_at(channel), *args]))
    except redis.RedisError:
        return _store_now(channel, event_type, data)
    _buffer.add(_Pending(channel, event_type, data, event_id))
    return event_id


def _store_now(channel: str, event_type: str, data: str) -> int:
    """Redis is down: the event goes into the table now, its id from there (see the module)."""
    known = max([i.eid for i in _buffer.unsynced if i.channel == channel], default=0)
    gap = 1 if known else RESTART_GAP  # the table holds this outage's ids already
    floor = max(known, _buffer.highest(channel))
    table = connection.ops.quote_name(StoredEvent._meta.db_table)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", [EVENT_LOCK, channel])
        cursor.execute(
            f"INSERT INTO {table} (channel, type, data, eid, created) "
            f"SELECT %s, %s, %s, GREATEST(COALESCE(MAX(eid), 0), %s) + %s, %s FROM {table} "
            "WHERE channel = %s RETURNING eid",
            [channel, event_type, json.dumps(data), floor, gap, timezone.now(), channel],
        )
        event_id = int(cursor.fetchone()[0])
    logger.warning(
        "Redis is down: event %s of %s stored directly, not published", event_id, channel
    )
    with _buffer.lock:
        _buffer.unsynced.append(_Pending(channel, event_type, data, event_id))
        del _buffer.unsynced[: max(0, len(_buffer.unsynced) - BUFFER_LIMIT)]
    return event_id


def _resync(script) -> None:
    """Redis is back: the events stored while it was down join the channels' recent events,
    go out to the streams and raise the counters above them (a RedisError leaves the rest)."""
    with _buffer.lock:
        items, _buffer.unsynced = _buffer.unsynced, []
    try:
        while items:
            item = items[0]
            args = _script_args(item.channel, item.type, item.data, True, str(item.eid))
            script(keys=[_counter_key(item.channel), _recent_key(item.channel)], args=["", *args])
            items.pop(0)
    finally:
        with _buffer.lock:
            _buffer.unsynced[:0] = items


def send_event(channel: str, event_type: str, data: dict) -> int:
    """Publish one event now (one Redis round trip, no SQL); returns its id."""
    return append(channel, event_type, json.dumps(data, cls=DjangoJSONEncoder), publish=True)


def flush() -> int:
    """Write the buffered events to the table in one INSERT; how many. A failed write keeps
    them for the next flush (inside a transaction, in a savepoint: the caller's goes on)."""
    if _buffer.unsynced:  # events stored while Redis was down: into Redis, if it is back
        with contextlib.suppress(redis.RedisError):
            _resync(_redis()[1])
    items = _buffer.take()
    if not items:
        return 0
    try:
        _insert([(i.channel, i.type, i.data, i.eid) for i in items])
        _trim()
    except Exception:
        _buffer.give_back(items)
        logger.exception(
            "could not store %s events for replay; kept for the next flush", len(items)
        )
        return 0
    return len(items)


def _insert(rows: list[tuple[str, str, str, int]]) -> int:
    """(channel, type, data JSON, id) rows into the table, ids already there skipped; how many
    were new. The table's format is django-eventstream's: the JSON data encoded once more. One
    statement per INSERT_ROWS (bulk_create would add BEGIN and COMMIT round trips around it)."""
    now = timezone.now()
    values = [(channel, type_, json.dumps(data), eid, now) for channel, type_, data, eid in rows]
    table = connection.ops.quote_name(StoredEvent._meta.db_table)
    new = 0
    with transaction.atomic() if connection.in_atomic_block else contextlib.nullcontext():
        with connection.cursor() as cursor:
            for start in range(0, len(values), INSERT_ROWS):
                chunk = values[start : start + INSERT_ROWS]
                cursor.execute(
                    f"INSERT INTO {table} (channel, type, data, eid, created) VALUES "
                    + ", ".join(["(%s, %s, %s, %s, %s)"] * len(chunk))
                    + " ON CONFLICT (channel, eid) DO NOTHING",
                    [field for row in chunk for field in row],
                )
                new += max(cursor.rowcount, 0)
    return new


_copied: dict[str, int] = {}  # persist_recent's: per channel, the highest id copied already


def persist_recent(channels: list[str], limit: int = 200) -> int:
    """Copy the channels' recent events from Redis into the table (the watchdog's sweep, for
    the events of a process killed before it flushed); how many were new. Each event is read
    once per process (ids above the last copied), at most `limit` per channel per call; those
    a flush stored already are skipped (ON CONFLICT DO NOTHING)."""
    global _copied
    client, _ = _redis()
    with client.pipeline(transaction=False) as pipe:
        for channel in channels:
            pipe.zrangebyscore(
                _recent_key(channel), f"({_copied.get(channel, 0)}", "+inf", 0, limit
            )
        found = pipe.execute()
    rows = []
    for channel, members in zip(channels, found, strict=True):
        for member in members:
            eid, _, body = member.decode().partition(" ")
            event = json.loads(body)
            rows.append((channel, event["type"], event["data"], int(eid)))
    new = _insert(rows) if rows else 0
    top = {channel: eid for channel, _, _, eid in rows}  # ascending per channel
    _copied = {channel: top.get(channel, _copied.get(channel, 0)) for channel in channels}
    return new


def _trim() -> None:
    now = time.monotonic()
    if now - _buffer.last_trim < TRIM_EVERY:
        return
    _buffer.last_trim = now
    StoredEvent.objects.filter(created__lt=timezone.now() - TABLE_KEEP).delete()


def _flush_quietly(**_: object) -> None:
    if _in_event_loop():
        # An async response closed in the event loop's own thread (Django's test client does
        # this): no database work here; the timer thread stores them within EVENTS_FLUSH_INTERVAL.
        return
    if not _buffer.items and not _buffer.unsynced:
        return  # nothing to store: the connection stays as Django's own receiver left it
    try:
        flush()
    except Exception:  # a request's end is no place to fail
        logger.exception("could not flush live events")
    finally:
        # Django's own request_finished receiver closed this thread's connection before (unless
        # CONN_MAX_AGE keeps it): one the flush took must go back (with DB_POOL a connection
        # kept here is lost to the pool, and a few streamed director turns used the pool up).
        if not connection.in_atomic_block:
            connection.close_if_unusable_or_obsolete()


def _in_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


request_finished.connect(_flush_quietly, dispatch_uid="filmstudio.eventstore.flush")


def _flush_at_exit() -> None:
    if settings.EVENTS_FLUSH_AT_EXIT:
        _flush_quietly()


atexit.register(_flush_at_exit)


class EventStore(StorageBase):
    """django-eventstream's storage: recent events from Redis, older or lost ones from the
    table; ids from the channel's Redis counter."""

    def append_event(self, channel: str, event_type: str, data: str) -> Event:
        # django-eventstream's send_event (the director's turns) publishes it itself.
        return Event(channel, event_type, data, id=append(channel, event_type, data, publish=False))

    def get_current_id(self, channel: str) -> int:
        client, _ = _redis()
        current = client.get(_counter_key(channel))
        if current is not None:
            return int(current)
        # Remember it, so the next reader asks Redis only (another process may have been first).
        client.set(_counter_key(channel), _restart_at(channel), nx=True)
        return int(client.get(_counter_key(channel)) or 0)

    def get_events(self, channel: str, last_id: int, limit: int = 100) -> list[Event]:
        current = self.get_current_id(channel)
        if last_id > current:
            raise EventDoesNotExist(f"No such event {last_id}", current)
        if last_id == current:
            return []
        client, _ = _redis()
        found: dict[int, Event] = {}
        for member in client.zrangebyscore(_recent_key(channel), f"({last_id}", "+inf", 0, limit):
            eid, _, body = member.decode().partition(" ")
            event = json.loads(body)
            found[int(eid)] = Event(channel, event["type"], event["data"], id=int(eid))
        first = min(found, default=current + 1)
        if first > last_id + 1:  # Redis lacks some (lost, trimmed): the table has them
            rows = StoredEvent.objects.filter(channel=channel, eid__gt=last_id, eid__lt=first)
            for row in rows.order_by("eid")[:limit]:
                found[row.eid] = Event(channel, row.type, json.loads(row.data), id=row.eid)
        return [found[eid] for eid in sorted(found)[:limit]]
