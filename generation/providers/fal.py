"""fal.ai image-to-video (fal-client): submit, poll, download, and signed webhooks."""

import base64
import functools
import hashlib
import hmac
import ipaddress
import json
import logging
import tempfile
import threading
import time
from collections.abc import Mapping
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any
from urllib.parse import urlsplit

import fal_client
import fal_client.client as fal_http
import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from filmstudio.logging import redact
from generation.providers.base import (
    PermanentProviderError,
    ProviderError,
    TransientProviderError,
    VideoPoll,
    fal_duration,
)
from generation.providers.retry import call_with_retries

logger = logging.getLogger(__name__)

# fal-client retries each HTTP call up to 10 times with backoff up to 30 s, the submit POST
# included. One attempt here, so that our own retry policy decides.
FAL_CLIENT_MAX_ATTEMPTS = 1
_DEFAULT_QUEUE_URL_FORMAT = fal_http.QUEUE_URL_FORMAT
_RETRYABLE_STATUS = frozenset({408, 409, 429})
# Access to the queue itself is refused: no request of ours can succeed until that is fixed.
_AUTH_STATUS = frozenset({401, 403})

WEBHOOK_TOLERANCE = 300  # seconds either side of now (fal's documented replay window)
JWKS_MAX_AGE = 24 * 3600
# After a failed verification, fetch the JWKS again (fal rotates keys), but not more often.
JWKS_MIN_REFRESH = 300
# After a fetch of the JWKS failed (or found no key), none again for this long.
JWKS_RETRY_AFTER = 60


def configure_fal_client() -> None:
    """Apply our settings to fal-client's module globals (it reads them at call time)."""
    fal_http.MAX_ATTEMPTS = FAL_CLIENT_MAX_ATTEMPTS
    url_format = settings.FAL_QUEUE_URL_FORMAT
    fal_http.QUEUE_URL_FORMAT = (
        url_format.rstrip("/") + "/" if url_format else _DEFAULT_QUEUE_URL_FORMAT
    )
    # Status and result calls ignore the client's timeout and use this one (120 s by default).
    fal_http.QUEUE_POLL_TIMEOUT = httpx.Timeout(
        settings.FAL_TIMEOUT, connect=min(10.0, settings.FAL_TIMEOUT)
    )


@functools.lru_cache(maxsize=16)
def fal_sync_client(key: str, timeout: float) -> fal_client.SyncClient:
    """One fal client per key and timeout in a process, its HTTP client made at once: building
    an httpx client (its TLS context) costs 25-50 ms, once per job when each job made its own.
    The worker makes it before forking (generation.worker.warm); no connection is open yet."""
    client = fal_client.SyncClient(key=key, default_timeout=timeout)
    _http = client._client  # a cached property: built now, shared from here on
    return client


@functools.cache
def download_client() -> httpx.Client:
    """The HTTP client clips are fetched with (one per process, for the same reason). It keeps
    no cookies: what one job's download was told to send back goes with no later request."""
    no_cookies = CookieJar(DefaultCookiePolicy(allowed_domains=[]))
    return httpx.Client(follow_redirects=False, cookies=no_cookies)


def _detail_text(detail: Any) -> str:
    """fal's `detail`: a string, or FastAPI's list of {"loc", "msg"} validation errors."""
    if isinstance(detail, list):
        items = []
        for item in detail:
            if isinstance(item, dict):
                loc = ".".join(str(part) for part in item.get("loc", []) if part != "body")
                items.append(f"{loc}: {item.get('msg', '')}" if loc else str(item.get("msg", "")))
            else:
                items.append(str(item))
        return "; ".join(items)
    if isinstance(detail, dict):
        return json.dumps(detail)
    return str(detail)


def provider_error(error: Exception, *, action: str) -> ProviderError:
    """fal-client and httpx errors as our Transient/Permanent errors."""
    if isinstance(error, fal_client.FalClientHTTPError):
        status = error.status_code
        message = redact(f"fal {action}: HTTP {status}: {_detail_text(error.message)}")
        if status in _RETRYABLE_STATUS or status >= 500:
            return TransientProviderError(message, retry_after=_retry_after(error.response_headers))
        return PermanentProviderError(message)
    return TransientProviderError(redact(f"fal {action}: {type(error).__name__}: {error}"))


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = {k.lower(): v for k, v in headers.items()}.get("retry-after")
    try:
        return float(value) if value else None
    except ValueError:
        return None


_FAL_ERRORS = (fal_client.FalClientHTTPError, httpx.HTTPError)


def _host_allowed(host: str, patterns: list[str]) -> bool:
    """`host` is one of `patterns` ("fal.media") or under one ("*.fal.media")."""
    for pattern in patterns:
        pattern = pattern.lower().rstrip(".")
        if pattern.startswith("*."):
            if host.endswith(pattern[1:]):
                return True
        elif host == pattern:
            return True
    return False


def _is_loopback(host: str | None) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


def download_allowed(url: str) -> bool:
    """Clips come over https from fal's media hosts (FAL_MEDIA_HOSTS), and from the configured
    fake queue's own origin when it is on loopback (tests): from nowhere else."""
    try:
        parts = urlsplit(url)
        origin = (parts.scheme, parts.hostname, parts.port)
        queue = urlsplit(settings.FAL_QUEUE_URL_FORMAT or "")
        fake = (queue.scheme, queue.hostname, queue.port)
    except ValueError:  # a port that is no number
        return False
    if parts.scheme == "https" and _host_allowed(parts.hostname or "", settings.FAL_MEDIA_HOSTS):
        return True
    return bool(settings.FAL_QUEUE_URL_FORMAT) and _is_loopback(fake[1]) and origin == fake


def download_video(url: str) -> bytes:
    """The clip at `url`, if fal's (`download_allowed`); no redirect is followed, and it is
    streamed to a temporary file that may not grow past FAL_MAX_DOWNLOAD_BYTES."""
    if not download_allowed(url):
        parts = urlsplit(url)
        hosts = ", ".join(settings.FAL_MEDIA_HOSTS)
        raise PermanentProviderError(
            f"fal download: {parts.scheme}://{parts.hostname or ''} not fetched: clips come "
            f"only over https from {hosts} (FAL_MEDIA_HOSTS)"
        )
    cap = settings.FAL_MAX_DOWNLOAD_BYTES
    too_big = f"fal download: the clip is larger than {cap} bytes (FAL_MAX_DOWNLOAD_BYTES)"
    try:
        with download_client().stream("GET", url, timeout=settings.FAL_TIMEOUT) as response:
            status = response.status_code
            if status >= 500 or status in _RETRYABLE_STATUS:
                raise TransientProviderError(f"fal download: HTTP {status}")
            if 300 <= status < 400:
                raise PermanentProviderError(f"fal download: HTTP {status} (not followed)")
            if status != 200:
                raise PermanentProviderError(f"fal download: HTTP {status}")
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > cap:
                raise PermanentProviderError(too_big)
            with tempfile.TemporaryFile(prefix="fal-clip-") as spool:
                size = 0
                for chunk in response.iter_bytes(1 << 20):
                    size += len(chunk)
                    if size > cap:
                        raise PermanentProviderError(too_big)
                    spool.write(chunk)
                spool.seek(0)
                return spool.read()
    except httpx.HTTPError as error:
        raise TransientProviderError(f"fal download: {type(error).__name__}: {error}") from error


def _video_url(result: Any) -> str | None:
    video = result.get("video") if isinstance(result, dict) else None
    url = video.get("url") if isinstance(video, dict) else None
    return url if isinstance(url, str) and url else None


class FalVideo:
    """VideoProvider on fal's queue: submit returns at once; poll (or the webhook) finishes."""

    name = "fal"
    instant = False  # a request runs for minutes: the poller (or the webhook) comes back

    def __init__(self, *, model: str | None = None, key: str | None = None):
        self.model = model or settings.FAL_MODEL
        key = key or settings.FAL_KEY
        if not key:
            # fal-client would otherwise look for credentials in the environment and ~/.fal.
            raise ImproperlyConfigured("FAL_KEY is not set")
        self._client = fal_sync_client(key, settings.FAL_TIMEOUT)

    def arguments(
        self, *, image: bytes, prompt: str, duration: float, aspect_ratio: str
    ) -> dict[str, Any]:
        return {
            "prompt": prompt,
            "image_url": "data:image/png;base64," + base64.b64encode(image).decode("ascii"),
            "duration": fal_duration(self.model, duration),
            "aspect_ratio": aspect_ratio,
        }

    def submit(
        self,
        *,
        image: bytes,
        prompt: str,
        duration: float,
        aspect_ratio: str,
        seed: int,
        webhook_url: str | None = None,
    ) -> str:
        # Neither kling nor veo on fal takes a seed we could rely on; `seed` is unused.
        arguments = self.arguments(
            image=image, prompt=prompt, duration=duration, aspect_ratio=aspect_ratio
        )
        configure_fal_client()

        def submit_once() -> str:
            try:
                handle = self._client.submit(self.model, arguments, webhook_url=webhook_url)
            except _FAL_ERRORS as error:
                raise provider_error(error, action="submit") from error
            return handle.request_id

        request_id = call_with_retries(
            submit_once,
            attempts=settings.PROVIDER_MAX_ATTEMPTS,
            base=settings.PROVIDER_BACKOFF_BASE,
            cap=settings.PROVIDER_BACKOFF_CAP,
        )
        logger.info("fal %s: submitted request %s", self.model, request_id)
        return request_id

    def poll(self, request_id: str, *, completed: bool = False) -> VideoPoll:
        """Where the request stands. Transient trouble raises: the caller polls again later.
        A request fal refuses to answer for (unknown id, failed run) is "failed"; refused
        credentials raise PermanentProviderError, since no request can succeed until fixed.
        `completed` (its status was just seen COMPLETED): the result is asked for at once."""
        configure_fal_client()
        try:
            if completed:
                fetched = self._fetch(request_id)
                if fetched is not None:
                    return fetched
            return self._poll(request_id)
        except PermanentProviderError as error:
            if _is_auth_error(error.__cause__):
                raise
            return VideoPoll("failed", error=error.message)

    def ready(self, request_id: str) -> bool:
        configure_fal_client()
        try:
            status = self._client.status(self.model, request_id, with_logs=False)
        except _FAL_ERRORS as error:
            raise provider_error(error, action="status") from error
        return isinstance(status, fal_client.Completed)

    def cancel(self, request_id: str) -> None:
        configure_fal_client()
        try:
            self._client.cancel(self.model, request_id)
        except _FAL_ERRORS as error:
            raise provider_error(error, action="cancel") from error
        logger.info("fal %s: cancelled request %s", self.model, request_id)

    def _fetch(self, request_id: str) -> VideoPoll | None:
        """The clip of a request seen COMPLETED, without asking its status again; None when
        fal refuses its result (a failed run: the status call that follows says why)."""
        try:
            result = self._result(request_id)
        except _FAL_ERRORS as error:
            problem = provider_error(error, action="poll")
            if isinstance(problem, PermanentProviderError) and not _is_auth_error(error):
                return None
            raise problem from error
        return self._video(result)

    def _result(self, request_id: str) -> Any:
        """The request's result, one GET. fal-client's `result` is `handle.get()`, which asks
        the status again first (and, for a request not done, waits for it, polling)."""
        handle = self._client.get_handle(self.model, request_id)
        response = fal_http._maybe_retry_request(
            handle.client, "GET", handle.response_url, timeout=fal_http.QUEUE_POLL_TIMEOUT
        )
        fal_http._raise_for_status(response)
        return response.json()

    def _video(self, result: Any) -> VideoPoll:
        url = _video_url(result)
        if url is None:
            return VideoPoll("failed", error="fal: the result has no video")
        return VideoPoll("done", video=download_video(url))

    def _poll(self, request_id: str) -> VideoPoll:
        try:
            status = self._client.status(self.model, request_id, with_logs=False)
            if not isinstance(status, fal_client.Completed):
                return VideoPoll("pending")
            if status.error:
                return VideoPoll("failed", error=f"fal: {status.error}")
            result = self._result(request_id)
        except _FAL_ERRORS as error:
            raise provider_error(error, action="poll") from error
        return self._video(result)


def _is_auth_error(error: BaseException | None) -> bool:
    return isinstance(error, fal_client.FalClientHTTPError) and error.status_code in _AUTH_STATUS


# --------------------------------------------------------------------------- webhooks


class _JwksCache:
    """fal's public webhook keys, per JWKS URL, kept in-process for a day. One fetch at a time
    (the others wait for it and use what it got), and none for JWKS_RETRY_AFTER seconds after
    one failed: unauthenticated POSTs cannot make the server fetch keys over and over."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # the entries
        self._fetching = threading.Lock()  # single flight
        self._entries: dict[str, tuple[float, list[Ed25519PublicKey]]] = {}
        self._failed_at: dict[str, float] = {}

    def _fresh(self, url: str, max_age: float) -> list[Ed25519PublicKey] | None:
        with self._lock:
            fetched_at, keys = self._entries.get(url, (0.0, []))
        return keys if keys and time.monotonic() - fetched_at < max_age else None

    def keys(self, url: str, *, refresh_older_than: float = JWKS_MAX_AGE) -> list[Ed25519PublicKey]:
        keys = self._fresh(url, refresh_older_than)
        if keys is not None:
            return keys
        with self._fetching:
            keys = self._fresh(url, refresh_older_than)  # fetched while this one waited
            if keys is not None:
                return keys
            with self._lock:
                failed_at = self._failed_at.get(url)
                known = self._entries.get(url, (0.0, []))[1]
            if failed_at is not None and time.monotonic() - failed_at < JWKS_RETRY_AFTER:
                return known
            try:
                keys = _fetch_jwks(url)
            except (httpx.HTTPError, ValueError) as error:
                keys = []
                logger.warning("fal webhook: cannot load signing keys: %s", error)
            with self._lock:
                if keys:
                    self._entries[url] = (time.monotonic(), keys)
                    self._failed_at.pop(url, None)
                else:
                    self._failed_at[url] = time.monotonic()
            return keys or known

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._failed_at.clear()


def _fetch_jwks(url: str) -> list[Ed25519PublicKey]:
    response = httpx.get(url, timeout=min(10.0, settings.FAL_TIMEOUT))
    response.raise_for_status()
    document = response.json()
    entries = document.get("keys", []) if isinstance(document, dict) else []
    return [key for key in map(_ed25519_key, entries) if key is not None]


def _ed25519_key(jwk: object) -> Ed25519PublicKey | None:
    if not isinstance(jwk, dict) or (jwk.get("kty"), jwk.get("crv")) != ("OKP", "Ed25519"):
        return None
    x = str(jwk.get("x", ""))
    try:
        return Ed25519PublicKey.from_public_bytes(base64.urlsafe_b64decode(x + "=" * (-len(x) % 4)))
    except ValueError:
        return None


jwks_cache = _JwksCache()


def _verifies(keys: list[Ed25519PublicKey], signature: bytes, message: bytes) -> bool:
    for key in keys:
        try:
            key.verify(signature, message)
            return True
        except InvalidSignature:
            continue
    return False


def verify_fal_webhook(body: bytes, headers: Mapping[str, str]) -> bool:
    """Whether `body` was signed by fal: ED25519 over
    "request_id\\nuser_id\\ntimestamp\\nsha256_hex(body)", keys from settings.FAL_JWKS_URL."""
    lowered = {name.lower(): value for name, value in headers.items()}
    fields = [
        lowered.get(f"x-fal-webhook-{name}", "")
        for name in ("request-id", "user-id", "timestamp", "signature")
    ]
    request_id, user_id, timestamp, signature_hex = fields
    if not all(fields):
        return False
    expected_user = settings.FAL_WEBHOOK_USER_ID
    if expected_user and not hmac.compare_digest(user_id.encode(), expected_user.encode()):
        logger.warning("fal webhook for another fal account (%s): refused", user_id[:64])
        return False
    try:
        if abs(time.time() - int(timestamp)) > WEBHOOK_TOLERANCE:
            return False
        signature = bytes.fromhex(signature_hex)
    except ValueError:
        return False
    message = "\n".join([request_id, user_id, timestamp, hashlib.sha256(body).hexdigest()])
    if _verifies(jwks_cache.keys(settings.FAL_JWKS_URL), signature, message.encode()):
        return True
    refreshed = jwks_cache.keys(settings.FAL_JWKS_URL, refresh_older_than=JWKS_MIN_REFRESH)
    return _verifies(refreshed, signature, message.encode())
