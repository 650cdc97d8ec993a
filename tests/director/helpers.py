"""Reading Server-Sent Events from Django responses (sync and async) in tests."""

import json
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

from django.test import AsyncClient
from rest_framework.authtoken.models import Token

END = ("complete", "error")


@dataclass(frozen=True)
class Event:
    type: str
    id: str | None
    data: Any


def parse_block(block: str) -> Event | None:
    """One SSE block; None for comments (keep-alives) and data-less events."""
    fields: dict[str, list[str]] = {}
    for line in block.splitlines():
        if not line or line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        fields.setdefault(name, []).append(value.removeprefix(" "))
    if "event" not in fields:
        return None
    data = "\n".join(fields.get("data", []))
    return Event(fields["event"][0], (fields.get("id") or [None])[0], json.loads(data or "null"))


class SSEBuffer:
    def __init__(self) -> None:
        self.text = ""
        self.events: list[Event] = []

    def feed(self, chunk: bytes | str) -> list[Event]:
        self.text += chunk.decode() if isinstance(chunk, bytes) else chunk
        new = []
        while "\n\n" in self.text:
            block, self.text = self.text.split("\n\n", 1)
            event = parse_block(block)
            if event is not None and event.type not in ("stream-open", "keep-alive"):
                new.append(event)
        self.events.extend(new)
        return new


def read_events(chunks: Iterable[bytes]) -> list[Event]:
    buffer = SSEBuffer()
    for chunk in chunks:
        buffer.feed(chunk)
    return buffer.events


async def aread_events(chunks: AsyncIterator[bytes], until=END, count: int | None = None):
    """Events until one of type `until` (or `count` events) arrives; the stream may go on."""
    buffer = SSEBuffer()
    async for chunk in chunks:
        for event in buffer.feed(chunk):
            if event.type in until or (count is not None and len(buffer.events) >= count):
                return buffer.events
    return buffer.events


def types_of(events: list[Event]) -> list[str]:
    return [event.type for event in events]


class TokenAsyncClient(AsyncClient):
    """AsyncClient sending a token on every request.

    Django 5.2.19's AsyncClient(headers=...) stores client-wide headers under WSGI names,
    which its ASGI scope then drops; per-request headers do arrive.
    """

    def __init__(self, token: str | None):
        super().__init__()
        self.auth = {"Authorization": f"Token {token}"} if token else {}

    def generic(self, *args, headers=None, **kwargs):
        return super().generic(*args, headers={**self.auth, **(headers or {})}, **kwargs)


def async_client_for(user) -> TokenAsyncClient:
    token, _ = Token.objects.get_or_create(user=user)
    return TokenAsyncClient(token.key)


async def post_turn(client: AsyncClient, **body):
    return await client.post(
        "/api/director/stream",
        body,
        content_type="application/json",
        headers={"Accept": "text/event-stream"},
    )


async def turn_events(client: AsyncClient, **body) -> list[Event]:
    response = await post_turn(client, **body)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/event-stream")
    return await aread_events(response.streaming_content)
