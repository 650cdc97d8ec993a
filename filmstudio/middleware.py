import json
from collections.abc import AsyncIterator

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connections
from django.http import JsonResponse

# The one upload: a project's music track (`POST /api/projects/{id}/music`), an audio file.
MUSIC_UPLOAD = "/api/projects/*/music"
MULTIPART_OVERHEAD = 64 * 1024


def _segments(path: str) -> list[str]:
    return [part for part in path.split("/") if part]


def body_limit(path: str) -> int:
    """The most bytes a request body to `path` may have: MAX_BODY_BYTES, or the allowance of
    the longest matching prefix of MAX_BODY_BYTES_BY_PATH (and the music upload's)."""
    allowances = [
        *settings.MAX_BODY_BYTES_BY_PATH,
        (MUSIC_UPLOAD, settings.MUSIC_MAX_BYTES + MULTIPART_OVERHEAD),
    ]
    parts = _segments(path)
    best, limit = -1, settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    for prefix, size in allowances:
        pattern = _segments(prefix)
        if len(pattern) > best and len(pattern) <= len(parts):
            if all(want in ("*", got) for want, got in zip(pattern, parts, strict=False)):
                best, limit = len(pattern), size
    return limit


def too_large_message(limit: int) -> str:
    return f"Request body is larger than the limit of {limit} bytes."


class BodySizeLimitMiddleware:
    """Answer an oversized body with a JSON 413 before Django's HTML 400 can (under WSGI and
    Django's test client; under ASGI `BodyLimitASGIMiddleware` refuses it before it is read)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        length = request.META.get("CONTENT_LENGTH") or "0"
        limit = body_limit(request.path)
        try:
            too_big = int(length) > limit
        except ValueError:
            return JsonResponse({"detail": "Invalid Content-Length header."}, status=400)
        if too_big:
            return JsonResponse({"detail": too_large_message(limit)}, status=413)
        return self.get_response(request)


class BodyLimitASGIMiddleware:
    """Refuse an oversized request body before anything reads it. Django's ASGI handler reads a
    whole body (into memory, then a temporary file) before any middleware runs, and uvicorn has
    no limit: a 50 MB chunked POST was read in full and a huge Content-Length got no answer.
    Here a body is refused by its Content-Length at once, and otherwise by counting its bytes
    as they arrive: a JSON 413 (connection closed), and the application sees a disconnect."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = body_limit(scope["path"])
        lengths = [v for k, v in scope.get("headers", []) if k.lower() == b"content-length"]
        if lengths:
            declared = lengths[0].strip()
            if len(lengths) > 1 or not declared.isdigit():
                return await _answer(send, 400, "Invalid Content-Length header.")
            if int(declared) > limit:
                return await _answer(send, 413, too_large_message(limit))
        received, refused = 0, False

        async def counted_receive():
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    refused = True
                    await _answer(send, 413, too_large_message(limit))
                    return {"type": "http.disconnect"}
            return message

        async def answered_send(message):
            if not refused:  # after a 413 the application has nothing left to say
                await send(message)

        await self.app(scope, counted_receive, answered_send)


async def _answer(send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),  # the rest of the body is never read
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def release_connections() -> None:
    """Close this thread's database connections, unless a transaction is open on one (a test's,
    or a caller's `atomic` block, whose work must not be cut short)."""
    for conn in connections.all(initialized_only=True):
        if not conn.in_atomic_block:
            conn.close()


class StreamsHoldNoConnectionMiddleware:
    """A streaming response (project and director SSE, the director's turns, `/blob`) may stay
    open for minutes, and Django closes a request's database connections only when its response
    ends: each open stream kept the connection its view had used, so a hundred idle streams
    were a hundred PostgreSQL sessions and the API got "too many clients". Here the connections
    are closed before the first byte, and for event streams again after each chunk
    (django-eventstream reads the event store and the channel's owner between waits).

    First in MIDDLEWARE, so that what the others do after the view (a session saved) is done.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if response.streaming:
            release_connections()
            if response.is_async and response.get("Content-Type", "").startswith(
                "text/event-stream"
            ):
                response.streaming_content = _released_after_each_chunk(response.streaming_content)
        return response


async def _released_after_each_chunk(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    release = sync_to_async(release_connections)  # in the request's thread, where they are
    async for chunk in chunks:
        await release()
        yield chunk
