"""Provider choice per kind of work: explicit in settings, or `auto` by which keys are present."""

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from generation.providers.base import ImageProvider, TextProvider, VideoProvider
from generation.providers.local import LocalImage, LocalText, LocalVideo

# The remote providers load their SDKs (google-genai, fal-client: about a second of CPU) only when
# chosen; the worker preloads them before forking (generation.worker).


def _choice(setting: str, *, remote: str, available: bool) -> str:
    value = getattr(settings, setting)
    if value == "auto":
        return remote if available else "local"
    if value not in (remote, "local"):  # settings refuse these at start; a test may override
        raise ImproperlyConfigured(f"{setting} must be auto, local or {remote}, got {value!r}")
    return value


def text_provider() -> TextProvider:
    if (
        _choice("TEXT_PROVIDER", remote="gemini", available=bool(settings.GEMINI_API_KEYS))
        == "gemini"
    ):
        from generation.providers.gemini import GeminiText  # noqa: PLC0415 (SDK only when chosen)

        return GeminiText()
    return LocalText()


def image_provider() -> ImageProvider:
    if (
        _choice("IMAGE_PROVIDER", remote="gemini", available=bool(settings.GEMINI_API_KEYS))
        == "gemini"
    ):
        from generation.providers.gemini import GeminiImage  # noqa: PLC0415 (SDK only when chosen)

        return GeminiImage()
    return LocalImage()


def video_provider() -> VideoProvider:
    if _choice("VIDEO_PROVIDER", remote="fal", available=bool(settings.FAL_KEY)) == "fal":
        from generation.providers.fal import FalVideo  # noqa: PLC0415 (SDK only when chosen)

        return FalVideo()
    return LocalVideo()
