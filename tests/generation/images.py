"""Images in tests: stored files read back, decoded, and the ones a request to the fake Gemini
carried (shared by the consistency, image edit and object image tests)."""

import base64
import io

from django.core.files.storage import default_storage
from PIL import Image


def read(name: str) -> bytes:
    with default_storage.open(name, "rb") as handle:
        return handle.read()


def pixels(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data)).convert("RGB")


def inline_images(body: dict) -> list[bytes]:
    """The images a Gemini request carries, in order."""
    return [
        _decoded(part["inlineData"]["data"])
        for content in body.get("contents") or []
        for part in content.get("parts") or []
        if "inlineData" in part
    ]


def _decoded(data: str) -> bytes:
    # the SDK sends bytes URL-safe base64 encoded, unpadded
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
