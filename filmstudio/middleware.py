import re
from collections.abc import AsyncIterator

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connections
from django.http import JsonResponse

# The one upload: a project's music track (`POST /api/projects/{id}/music`).
MUSIC_UPLOAD = re.compile(r"/api/projects/[0-9]+/music/?")
MULTIPART_OVERHEAD = 64 * 1024


class BodySizeLimitMiddleware:
    """Answer an oversized body with a JSON 413 before Django's HTML 400 can."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        length = request.META.get("CONTENT_LENGTH") or "0"
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if request.method == "POST" and MUSIC_UPLOAD.fullmatch(request.path):
            limit = settings.MUSIC_MAX_BYTES + MULTIPART_OVERHEAD  # an audio file, 20 MB
        try:
            too_big = int(length) > limit
        except ValueError:
            return JsonResponse({"detail": "Invalid Content-Length header."}, status=400)
        if too_big:
            return JsonResponse(
                {"detail": f"Request body is larger than the limit of {limit} bytes."},
                status=413,
            )
        return self.get_response(request)


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
