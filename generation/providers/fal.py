"""fal.ai image-to-video (fal-client): submit, poll, download, and signed webhooks."""

import base64
import hashlib
import json
import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

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


def download_video(url: str) -> bytes:
    try:
        response = httpx.get(url, timeout=settings.FAL_TIMEOUT, follow_redirects=True)
    except httpx.HTTPError as error:
        raise TransientProviderError(f"fal download: {type(error).__name__}: {error}") from error
    if response.status_code >= 500 or response.status_code in _RETRYABLE_STATUS:
        raise TransientProviderError(f"fal download: HTTP {response.status_code}")
    if response.status_code != 200:
        raise PermanentProviderError(f"fal download: HTTP {response.status_code}")
    return response.content


def _video_url(result: Any) -> str | None:
    video = result.get("video") if isinstance(result, dict) else None
    url = video.get("url") if isinstance(video, dict) else None
    return url if isinstance(url, str) and url else None


class FalVideo:
    """VideoProvider on fal's queue: submit returns at once; poll (or the webhook) finishes."""

    name = "fal"

    def __init__(self, *, model: str | None = None, key: str | None = None):
        self.model = model or settings.FAL_MODEL
        key = key or settings.FAL_KEY
        if not key:
            # fal-client would otherwise look for credentials in the environment and ~/.fal.
            raise ImproperlyConfigured("FAL_KEY is not set")
        self._client = fal_client.SyncClient(key=key, default_timeout=settings.FAL_TIMEOUT)

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

    def poll(self, request_id: str) -> VideoPoll:
        """Where the request stands. Transient trouble raises: the caller polls again later.
        A request fal refuses to answer for (unknown id, failed run) is "failed"; refused
        credentials raise PermanentProviderError, since no request can succeed until fixed."""
        configure_fal_client()
        try:
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

    def _poll(self, request_id: str) -> VideoPoll:
        try:
            status = self._client.status(self.model, request_id, with_logs=False)
            if not isinstance(status, fal_client.Completed):
                return VideoPoll("pending")
            if status.error:
                return VideoPoll("failed", error=f"fal: {status.error}")
            result = self._client.result(self.model, request_id)
        except _FAL_ERRORS as error:
            raise provider_error(error, action="poll") from error
        url = _video_url(result)
        if url is None:
            return VideoPoll("failed", error="fal: the result has no video")
        return VideoPoll("done", video=download_video(url))


def _is_auth_error(error: BaseException | None) -> bool:
    return isinstance(error, fal_client.FalClientHTTPError) and error.status_code in _AUTH_STATUS


# --------------------------------------------------------------------------- webhooks


class _JwksCache:
    """fal's public webhook keys, per JWKS URL, kept in-process for a day."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, list[Ed25519PublicKey]]] = {}

    def keys(self, url: str, *, refresh_older_than: float = JWKS_MAX_AGE) -> list[Ed25519PublicKey]:
        with self._lock:
            fetched_at, keys = self._entries.get(url, (0.0, []))
        if time.monotonic() - fetched_at < refresh_older_than and keys:
            return keys
        keys = _fetch_jwks(url)
        with self._lock:
            self._entries[url] = (time.monotonic(), keys)
        return keys

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


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
    try:
        if abs(time.time() - int(timestamp)) > WEBHOOK_TOLERANCE:
            return False
        signature = bytes.fromhex(signature_hex)
    except ValueError:
        return False
    message = "\n".join([request_id, user_id, timestamp, hashlib.sha256(body).hexdigest()])
    try:
        if _verifies(jwks_cache.keys(settings.FAL_JWKS_URL), signature, message.encode()):
            return True
        refreshed = jwks_cache.keys(settings.FAL_JWKS_URL, refresh_older_than=JWKS_MIN_REFRESH)
    except (httpx.HTTPError, ValueError) as error:
        logger.warning("fal webhook: cannot load signing keys: %s", error)
        return False
    return _verifies(refreshed, signature, message.encode())


def parse_fal_webhook(body: bytes) -> tuple[str, VideoPoll | None]:
    """A verified webhook body as (request_id, outcome). The outcome is None when the
    payload does not tell (fal sends `payload: null` when it could not serialize it):
    poll the request instead."""
    try:
        data = json.loads(body)
        request_id = str(data["request_id"])
    except (ValueError, KeyError, TypeError) as error:
        raise PermanentProviderError(f"fal webhook: malformed body: {error}") from error
    status = data.get("status")
    payload = data.get("payload")
    if status == "ERROR":
        detail = payload.get("detail") if isinstance(payload, dict) else None
        message = str(data.get("error") or "request failed")
        if detail:
            message = f"{message}: {_detail_text(detail)}"
        return request_id, VideoPoll("failed", error=f"fal: {message}")
    url = _video_url(payload)
    if status != "OK" or url is None:
        return request_id, None
    try:
        return request_id, VideoPoll("done", video=download_video(url))
    except PermanentProviderError as error:
        return request_id, VideoPoll("failed", error=error.message)
