"""One authenticated front for django-eventstream channels.

django-eventstream's view only sees the session user (token clients look anonymous) and answers
refusals with a 200 stream carrying an error event. This wrapper authenticates token or session,
checks ownership and answers JSON 401/404 before any stream starts; the channel manager
(`OwnerChannelManager`) checks again inside the stream, asking the app that owns the channel's
kind (`register_channel`, called from each app's `ready()`), so this module knows no app.

django-eventstream also reads `?es-meta=` (a JWT signed with SECRET_KEY that replaces the
stream's user and channels: garbage there was a 500, a forged token another user's channel) and
`?recover=true` (Pushpin's GRIP, which this site does not run: a 500): both are refused.
"""

from collections.abc import Callable

from django.http import JsonResponse
from django_eventstream.channelmanager import DefaultChannelManager
from django_eventstream.views import events
from rest_framework.authentication import TokenAuthentication
from rest_framework.exceptions import AuthenticationFailed


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
    request.user = user
    response = events(request, channels=[channel])
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
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
