"""Turn events: published to the session's eventstream channel and relayed to the POST stream.

The turn runs in its own thread; the HTTP response only reads this relay. Under ASGI Django
cancels a streaming response's iterator when the client goes away: that ends the reading, never
the turn, which keeps publishing to the channel (and storing) until it is done.
"""

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Iterator

from django.conf import settings
from django_eventstream.utils import sse_encode_event

from filmstudio import eventstore

logger = logging.getLogger(__name__)

KEEPALIVE = ": keep-alive\n\n"
TURN_EVENTS = ("start", "message", "function_call", "confirm", "complete", "error")


def session_channel(session_id: int) -> str:
    return f"director-{session_id}"


class TurnRelay:
    """Encoded SSE events from one producer thread to any number of readers, sync or async."""

    def __init__(self) -> None:
        self._chunks: list[str] = []
        self._closed = False
        self._condition = threading.Condition()
        self._async_waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()

    def put(self, chunk: str) -> None:
        with self._condition:
            self._chunks.append(chunk)
            self._wake()

    def close(self) -> None:
        with self._condition:
            self._closed = True
            self._wake()

    def _wake(self) -> None:
        self._condition.notify_all()
        for waiter in list(self._async_waiters):
            loop, event = waiter
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # that reader's loop is closed: it will never read again
                self._async_waiters.discard(waiter)

    def _take(self, cursor: int) -> tuple[list[str], bool]:
        return self._chunks[cursor:], self._closed

    def __iter__(self) -> Iterator[str]:
        cursor = 0
        while True:
            with self._condition:
                chunks, closed = self._take(cursor)
                if not chunks and not closed:
                    self._condition.wait(timeout=settings.DIRECTOR_KEEPALIVE)
                    chunks, closed = self._take(cursor)
            if chunks:
                cursor += len(chunks)
                yield "".join(chunks)
            elif closed:
                return
            else:
                yield KEEPALIVE

    async def stream(self) -> AsyncIterator[str]:
        loop, wake = asyncio.get_running_loop(), asyncio.Event()
        with self._condition:
            self._async_waiters.add((loop, wake))
        cursor = 0
        try:
            while True:
                with self._condition:
                    wake.clear()  # under the lock: a later put() always sets it again
                    chunks, closed = self._take(cursor)
                if chunks:
                    cursor += len(chunks)
                    yield "".join(chunks)
                elif closed:
                    return
                else:
                    try:
                        await asyncio.wait_for(wake.wait(), timeout=settings.DIRECTOR_KEEPALIVE)
                    except TimeoutError:
                        yield KEEPALIVE
        finally:
            with self._condition:
                self._async_waiters.discard((loop, wake))


class TurnEvents:
    """Emits a turn's events: stored on the session channel (for Last-Event-ID replay), then
    relayed with the same event id, so a client that lost the POST stream can resume on
    /api/director/sessions/{id}/events from the last id it saw."""

    def __init__(self, session_id: int, relay: TurnRelay):
        self.channel = session_channel(session_id)
        self.relay = relay

    def emit(self, event_type: str, data: dict) -> None:
        event_id = self._publish(event_type, data)
        self.relay.put(sse_encode_event(event_type, data, event_id=event_id, json_encode=True))

    def close(self) -> None:
        self.relay.close()

    def _publish(self, event_type: str, data: dict) -> str | None:
        try:  # one Redis round trip: the id, the replay log and the pub/sub message
            return f"{self.channel}:{eventstore.send_event(self.channel, event_type, data)}"
        except Exception:  # the live relay matters more than the replay log: carry on without
            logger.exception("could not publish %s on %s", event_type, self.channel)
            return None
