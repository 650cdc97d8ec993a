"""Signed, expiring blob URLs that stay identical within an expiry window."""

import hashlib
import hmac
import re
import time

from django.conf import settings
from django.utils.encoding import force_bytes

MEDIA_TYPES = ("characters", "objects", "frames", "videos", "lines", "music", "final", "exports")
_SALT = "filmstudio.media.blob"
_EXPIRES = re.compile(r"[0-9]{1,15}")


# The HMAC keyed for the secret in use: `salted_hmac` derives its key (a SHA-256 of salt and
# secret) and pads it on every call; a document of a hundred URLs paid that a hundred times.
_keyed: dict[bytes, hmac.HMAC] = {}


def _digest(name: str, expires: int) -> str:
    """`salted_hmac(_SALT, f"{name}:{expires}", algorithm="sha256")`, its first 32 hex digits."""
    secret = force_bytes(settings.SECRET_KEY)
    keyed = _keyed.get(secret)
    if keyed is None:
        key = hashlib.sha256(force_bytes(_SALT) + secret).digest()
        keyed = hmac.new(key, digestmod=hashlib.sha256)
        _keyed.clear()  # one secret at a time (tests override it)
        _keyed[secret] = keyed
    mac = keyed.copy()
    mac.update(f"{name}:{expires}".encode())
    return mac.hexdigest()[:32]


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
