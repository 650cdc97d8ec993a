"""A log filter that masks configured secrets wherever they appear in a log line, and the
signature of signed URLs (`?sig=`, access logs); `public_error` for messages users read."""

import logging
import re
from urllib.parse import quote, unquote, urlsplit

from django.conf import settings

# The password of any URL ("scheme://user:password@host"), however short.
_URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s]+@", re.IGNORECASE)
# The signature of a signed /blob URL: whoever holds the URL may read the file.
_URL_SIGNATURE = re.compile(r"([?&]sig=)[^&#\s\"']+")
# An absolute file path of this server (not a URL's path): it keeps only its last part.
_SERVER_PATH = re.compile(r"(?<![\w./:~-])/(?:[^\s/'\"`:]+/)+")


def connection_passwords() -> list[str]:
    """Passwords of the database and Redis connections in use, whichever variable named them."""
    passwords = [db.get("PASSWORD") or "" for db in settings.DATABASES.values()]
    passwords += [
        unquote(urlsplit(queue["URL"]).password or "")
        for queue in getattr(settings, "RQ_QUEUES", {}).values()
        if queue.get("URL")
    ]
    passwords.append(getattr(settings, "EVENTSTREAM_REDIS", {}).get("password") or "")
    return [password for password in passwords if password]


def secret_values() -> list[str]:
    values: list[str] = []
    for name in settings.SECRET_SETTINGS:
        value = getattr(settings, name, "")
        values.extend(value if isinstance(value, list | tuple) else [value])
    for password in connection_passwords():
        values += [password, quote(password, safe="")]  # bare, and as written in a URL
    # Short values would mask ordinary words; real keys are long.
    return [str(v) for v in values if v and len(str(v)) >= 8]


def redact(text: str) -> str:
    for value in secret_values():
        text = text.replace(value, "***")
    text = _URL_SIGNATURE.sub(r"\1***", text)
    return _URL_PASSWORD.sub(r"\1***@", text)


def public_error(text: str) -> str:
    """An error message as a job's owner may read it: secrets masked and server paths cut to
    their file name ("/srv/var/media/3/frames/x.png" -> ".../x.png")."""
    return _SERVER_PATH.sub(".../", redact(text))


class RedactSecretsFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is still worth logging as is
            return True
        cleaned = redact(message)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        return True
