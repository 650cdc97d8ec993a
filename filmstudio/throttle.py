"""Login attempts limited per client address: the admin's and the site's login forms.

The API's own limits are DRF throttles (`DEFAULT_THROTTLE_RATES`); these forms are plain Django
views, so a middleware counts their POSTs in the shared cache (Redis) and answers `429` with
`Retry-After` once the window is full."""

import time

from django.conf import settings
from django.core.cache import cache
from django.http import HttpResponse
from rest_framework.throttling import SimpleRateThrottle

LOGIN_PATHS = ("/accounts/login/", "/admin/login/")


def parse_rate(rate: str) -> tuple[int, int]:
    """A rate such as `10/min` as (10 requests, 60 s), read the way DRF reads its rates."""
    count, seconds = SimpleRateThrottle.parse_rate(None, rate)  # type: ignore[arg-type]
    return int(count or 0), int(seconds or 0)


def client_address(request) -> str:
    return request.META.get("REMOTE_ADDR", "") or "unknown"


class LoginThrottleMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.method == "POST" and request.path in LOGIN_PATHS:
            limit, window = parse_rate(settings.THROTTLE_LOGIN)
            slot = int(time.time() // window)
            key = f"login-throttle:{client_address(request)}:{slot}"
            cache.add(key, 0, timeout=window + 1)
            if cache.incr(key) > limit:
                wait = window - int(time.time()) % window
                response = HttpResponse(
                    f"Too many login attempts from this address; try again in {wait} s.",
                    status=429,
                    content_type="text/plain",
                )
                response["Retry-After"] = str(wait)
                return response
        return self.get_response(request)
