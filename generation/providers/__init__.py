"""Provider choice per kind of work: explicit in settings, or `auto` by which keys are present."""

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from generation.providers.base import (
    ImageProvider,
    SpeechProvider,
    TextProvider,
    VideoProvider,
    Voice,
    fal_duration,
)
from generation.providers.local import (
    LOCAL_IMAGE,
    LOCAL_SPEECH,
    LOCAL_TEXT,
    LOCAL_VIDEO,
    LOCAL_VOICES,
    LocalImage,
    LocalSpeech,
    LocalText,
    LocalVideo,
)

# The remote providers load their SDKs (google-genai, fal-client: about a second of CPU) only when
# chosen; the worker preloads them before forking (generation.worker).


def _choice(setting: str, *, remote: str, available: bool) -> str:
    value = getattr(settings, setting)
    if value == "auto":
        return remote if available else "local"
    if value not in (remote, "local"):  # settings refuse these at start; a test may override
        raise ImproperlyConfigured(f"{setting} must be auto, local or {remote}, got {value!r}")
    return value


def _text_kind() -> str:
    return _choice("TEXT_PROVIDER", remote="gemini", available=bool(settings.GEMINI_API_KEYS))


def _image_kind() -> str:
    return _choice("IMAGE_PROVIDER", remote="gemini", available=bool(settings.GEMINI_API_KEYS))


def _video_kind() -> str:
    return _choice("VIDEO_PROVIDER", remote="fal", available=bool(settings.FAL_KEY))


def _speech_kind() -> str:
    return _choice("SPEECH_PROVIDER", remote="gemini", available=bool(settings.GEMINI_API_KEYS))


# Which provider and model each kind of work goes to, without building the client (estimates).


def text_choice() -> tuple[str, str]:
    return ("gemini", settings.GEMINI_TEXT_MODEL) if _text_kind() == "gemini" else LOCAL_TEXT


def image_choice() -> tuple[str, str]:
    return ("gemini", settings.GEMINI_IMAGE_MODEL) if _image_kind() == "gemini" else LOCAL_IMAGE


def video_choice() -> tuple[str, str]:
    return ("fal", settings.FAL_MODEL) if _video_kind() == "fal" else LOCAL_VIDEO


def speech_choice() -> tuple[str, str]:
    return ("gemini", settings.GEMINI_SPEECH_MODEL) if _speech_kind() == "gemini" else LOCAL_SPEECH


def director_choice() -> tuple[str, str]:
    """The director's model (its turns, agent runs' planner); offline, the rules (`local`)."""
    kind = _choice("DIRECTOR_PROVIDER", remote="gemini", available=bool(settings.GEMINI_API_KEYS))
    return ("gemini", settings.GEMINI_DIRECTOR_MODEL) if kind == "gemini" else LOCAL_TEXT


def speech_voices() -> list[Voice]:
    """The voices of the configured speech provider (no client built, no call made)."""
    if _speech_kind() == "gemini":
        from generation.providers.gemini import GEMINI_VOICES  # noqa: PLC0415 (SDK only when chosen)

        return list(GEMINI_VOICES)
    return list(LOCAL_VOICES)


def billed_seconds(duration: float) -> float:
    """The seconds of video the video service bills for a clip of `duration`: fal models make
    clips of fixed lengths (kling: 5 or 10 s), billed whole."""
    provider, model = video_choice()
    if provider == "fal":
        return float(fal_duration(model, duration).rstrip("s"))
    return float(duration)


def text_provider() -> TextProvider:
    if _text_kind() == "gemini":
        from generation.providers.gemini import GeminiText  # noqa: PLC0415 (SDK only when chosen)

        return GeminiText()
    return LocalText()


def image_provider() -> ImageProvider:
    if _image_kind() == "gemini":
        from generation.providers.gemini import GeminiImage  # noqa: PLC0415 (SDK only when chosen)

        return GeminiImage()
    return LocalImage()


def video_provider() -> VideoProvider:
    if _video_kind() == "fal":
        from generation.providers.fal import FalVideo  # noqa: PLC0415 (SDK only when chosen)

        return FalVideo()
    return LocalVideo()


def speech_provider() -> SpeechProvider:
    if _speech_kind() == "gemini":
        from generation.providers.gemini import GeminiSpeech  # noqa: PLC0415 (SDK only when chosen)

        return GeminiSpeech()
    return LocalSpeech()
