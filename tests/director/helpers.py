"""The director's streams in tests: async reading, token clients (SSE: filmstudio.support)."""

from collections.abc import AsyncIterator

from django.test import AsyncClient
from rest_framework.authtoken.models import Token

from filmstudio.support import Event, SSEBuffer

END = ("complete", "error")


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


def counts_of(estimate: dict) -> dict:
    """A confirmation's paid calls, without their price (asserted on its own)."""
    assert estimate["total_usd"] >= 0
    return {key: value for key, value in estimate.items() if key != "total_usd"}


# --- the Gemini director against the fake (its fixtures: conftest.fake_server and fake) ------

KEY = "AIzaFakeDirectorKeyAAAAAAAAAAAAAAAAAAAAA"


def call(name: str, **args) -> dict:
    """A function call in a scripted model turn."""
    return {"function_call": {"name": name, "args": args}}


def stream_bodies(fake) -> list[dict]:
    return [r.body for r in fake.requests if r.kind == "stream"]
