"""A log filter that masks configured secrets wherever they appear in a log line."""

import logging

from django.conf import settings


def secret_values() -> list[str]:
    values: list[str] = []
    for name in settings.SECRET_SETTINGS:
        value = getattr(settings, name, "")
        values.extend(value if isinstance(value, list | tuple) else [value])
    # Short values would mask ordinary words; real keys are long.
    return [str(v) for v in values if v and len(str(v)) >= 8]


def redact(text: str) -> str:
    for value in secret_values():
        text = text.replace(value, "***")
    return text


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
