"""Signed, expiring blob URLs that stay identical within an expiry window."""

import hashlib
import hmac
import re
import time

from django.conf import settings
from django.utils.crypto import salted_hmac

MEDIA_TYPES = ("characters", "objects", "frames", "videos", "lines", "music", "final", "exports")
_SALT = "filmstudio.media.blob"
_EXPIRES = re.compile(r"[0-9]{1,15}")


def _digest(name: str, expires: int) -> str:
    return salted_hmac(_SALT, f"{name}:{expires}", algorithm="sha256").hexdigest()[:32]


def sign(name: str, *, now: float | None = None) -> str:
    """`{expires}.{mac}` where expires is the end of the next window, so it is valid >= max_age."""
    max_age = settings.BLOB_URL_MAX_AGE
    window = int((now if now is not None else time.time()) // max_age)
    expires = (window + 2) * max_age
    return f"{expires}.{_digest(name, expires)}"


def verify(name: str, signature: str, *, now: float | None = None) -> bool:
    expires_raw, _, mac = signature.partition(".")
    # str.isdigit() accepts "²", which int() rejects; the bound keeps int() cheap.
    if not _EXPIRES.fullmatch(expires_raw) or not mac:
        return False
    expires = int(expires_raw)
    if expires < (now if now is not None else time.time()):
        return False
    # Bytes, because compare_digest raises TypeError on non-ASCII str.
    return hmac.compare_digest(_digest(name, expires).encode(), mac.encode())


def blob_url(name: str) -> str | None:
    """Site-relative signed URL of a stored file name (`{project_id}/{type}/{file}`)."""
    if not name:
        return None
    return f"/blob/{name}?sig={sign(name)}"


def hash_name(*parts: object) -> str:
    return hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()[:16]
