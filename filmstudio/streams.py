"""One authenticated front for django-eventstream channels.

django-eventstream's view only sees the session user (token clients look anonymous) and answers
refusals with a 200 stream carrying an error event. This wrapper authenticates token or session,
checks ownership and answers JSON 401/404 before any stream starts; the channel manager
(`OwnerChannelManager`) checks again inside the stream, asking the app that owns the channel's
kind (`register_channel`, called from each app's `ready()`), so this module knows no app.

django-eventstream also reads `?es-meta=` (a JWT signed with SECRET_KEY that replaces the
stream's user and channels: garbage there was a 500, a forged token another user's channel) and
`?recover=true` (Pushpin's GRIP, which this site does not run: a 500): both are refused.

Every stream, these and the director's turns, holds one of its user's MAX_STREAMS_PER_USER
places in this web process (its socket and the event listener's fan-out are this process's)
until it ends; one more is a JSON 429.
"""

import threading
import weakref
from collections.abc import AsyncIterator, Callable, Iterator

from django.conf import settings
from django.http import JsonResponse, StreamingHttpResponse
from django_eventstream.channelmanager import DefaultChannelManager
from django_eventstream.views import events
from rest_framework.exceptions import AuthenticationFailed

from filmstudio.auth import TokenAuthentication


def request_user(request):
    """The token user if an Authorization header is given, else the session user, else None."""
    try:
        found = TokenAuthentication().authenticate(request)
    except AuthenticationFailed:
        return None
    if found:
        return found[0]
    user = getattr(request, "user", None)
    return user if user is not None and user.is_authenticated else None


# Query parameters django-eventstream acts on that no client of ours sends.
REFUSED_PARAMS = ("es-meta", "recover")


def authenticated_stream(request, *, channel: str, owns: Callable[[object], bool]):
    if request.method != "GET":
        return JsonResponse({"detail": f'Method "{request.method}" not allowed.'}, status=405)
    user = request_user(request)
    if user is None:
        return JsonResponse({"detail": "Authentication credentials were not provided."}, status=401)
    if not owns(user):
        return JsonResponse({"detail": "Not found."}, status=404)
    refused = [name for name in REFUSED_PARAMS if name in request.GET]
    if refused:
        return JsonResponse(
            {name: ["This parameter is not accepted."] for name in refused}, status=400
        )
    release = stream_slot(user)
    if release is None:
        return JsonResponse({"detail": too_many_streams_message()}, status=429)
    request.user = user
    try:
        response = events(request, channels=[channel])
    except BaseException:
        release()
        raise
    if not response.streaming:  # django-eventstream's own refusals are plain responses
        release()
        return response
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return release_when_done(response, release)


# --------------------------------------------------------------------------- open streams


class StreamSlots:
    """How many streams each user has open in this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: dict[int, int] = {}

    def take(self, user_id: int, limit: int) -> Callable[[], None] | None:
        """A place for one more stream (the function gives it back; calling it again does
        nothing), or None when the user already holds `limit`."""
        with self._lock:
            held = self._open.get(user_id, 0)
            if held >= limit:
                return None
            self._open[user_id] = held + 1
        given_back = threading.Event()

        def release() -> None:
            with self._lock:
                if given_back.is_set():
                    return
                given_back.set()
                left = self._open.get(user_id, 1) - 1
                if left > 0:
                    self._open[user_id] = left
                else:
                    self._open.pop(user_id, None)

        return release

    def held(self, user_id: int) -> int:
        with self._lock:
            return self._open.get(user_id, 0)


stream_slots = StreamSlots()


def stream_slot(user) -> Callable[[], None] | None:
    return stream_slots.take(user.pk, settings.MAX_STREAMS_PER_USER)


def too_many_streams_message() -> str:
    limit = settings.MAX_STREAMS_PER_USER
    return f"Too many open streams: at most {limit} at once per user; close one first."


def release_when_done(response: StreamingHttpResponse, release: Callable[[], None]):
    """`response`, giving its stream's place back when the stream ends: read to the end, closed
    (the client left), or never sent at all (the response is collected)."""
    content = response._iterator  # as given: the getter would wrap it in a reference to response
    if response.is_async:

        async def released_async() -> AsyncIterator:
            try:
                async for chunk in content:
                    yield chunk
            finally:
                release()

        response.streaming_content = released_async()
    else:

        def released() -> Iterator:
            try:
                yield from content
            finally:
                release()

        response.streaming_content = released()
    weakref.finalize(response, release)
    return response


# Channel names are "<kind>-<id>"; each kind's reader says whether a user may read object `id`.
ChannelReader = Callable[[object, int], bool]
_READERS: dict[str, ChannelReader] = {}


def register_channel(kind: str, may_read: ChannelReader) -> None:
    _READERS[kind] = may_read


class OwnerChannelManager(DefaultChannelManager):
    """Only a channel's owner may read it (the default lets anyone read any)."""

    def can_read_channel(self, user, channel: str) -> bool:
        if user is None or not user.is_authenticated:
            return False
        kind, _, ident = channel.partition("-")
        reader = _READERS.get(kind)
        if reader is None or not (ident.isascii() and ident.isdigit()):
            return False
        return reader(user, int(ident))
