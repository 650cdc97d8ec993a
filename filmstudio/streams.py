"""One authenticated front for django-eventstream channels.

django-eventstream's view only sees the session user (token clients look anonymous) and answers
refusals with a 200 stream carrying an error event. This wrapper authenticates token or session,
checks ownership and answers JSON 401/404 before any stream starts; the channel manager
(generation.events.OwnerChannelManager) checks ownership again inside the stream.
"""

from collections.abc import Callable

from django.http import JsonResponse
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


def authenticated_stream(request, *, channel: str, owns: Callable[[object], bool]):
    if request.method != "GET":
        return JsonResponse({"detail": f'Method "{request.method}" not allowed.'}, status=405)
    user = request_user(request)
    if user is None:
        return JsonResponse({"detail": "Authentication credentials were not provided."}, status=401)
    if not owns(user):
        return JsonResponse({"detail": "Not found."}, status=404)
    request.user = user
    response = events(request, channels=[channel])
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response
