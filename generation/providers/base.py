"""What the pipeline asks of an AI provider. Implementations: local (offline), gemini, fal."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, TypeVar

from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)


# Clip lengths each model family accepts; clips are trimmed to the scene later.
_DURATIONS: tuple[tuple[str, tuple[int, ...], str], ...] = (
    ("veo", (4, 6, 8), "s"),
    ("", (5, 10), ""),  # kling and the default
)


def fal_duration(model: str, seconds: float) -> str:
    """The shortest allowed clip length that covers `seconds` (else the longest)."""
    for family, allowed, suffix in _DURATIONS:
        if family in model:
            chosen = next((d for d in allowed if d >= seconds), allowed[-1])
            return f"{chosen}{suffix}"
    raise AssertionError("unreachable: the last family matches every model")


class ProviderError(Exception):
    """A provider call failed. `retryable` says whether trying again later may succeed."""

    retryable = False

    def __init__(self, message: str, *, retry_after: float | None = None):
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


class TransientProviderError(ProviderError):
    """Rate limits, 5xx, timeouts: worth retrying."""

    retryable = True


class PermanentProviderError(ProviderError):
    """Bad request, safety block, unknown model: retrying the same call cannot help."""


class TextProvider(Protocol):
    name: str

    @property
    def model(self) -> str: ...

    def generate_json(
        self, *, prompt: str, schema: type[M], system: str = "", images: Sequence[bytes] = ()
    ) -> M:
        """Structured output: an instance of `schema` (a Pydantic model); `images` are sent
        with the prompt (a vision question, e.g. the consistency judge's)."""
        ...


@dataclass(frozen=True)
class Voice:
    """A voice a speech provider offers. `traits` guide the choice of a voice for a character
    (feminine, masculine, young, mature, low, high, warm, bright...)."""

    id: str
    provider: str
    name: str
    description: str
    traits: frozenset[str] = frozenset()

    def as_dict(self) -> dict[str, str]:
        return {
            "id": self.id,
            "provider": self.provider,
            "name": self.name,
            "description": self.description,
        }


class SpeechProvider(Protocol):
    name: str

    @property
    def model(self) -> str: ...

    def voices(self) -> list[Voice]:
        """Every voice `speak` accepts, in a stable order."""
        ...

    def speak(self, *, text: str, voice: str, seed: int) -> bytes:
        """The text spoken in `voice` (one of `voices()`' ids), as a WAV file."""
        ...


class ImageProvider(Protocol):
    name: str

    @property
    def model(self) -> str: ...

    def generate_image(
        self, *, prompt: str, references: list[bytes], aspect_ratio: str, seed: int
    ) -> bytes:
        """A PNG (or JPEG) image; `references` are images (e.g. portraits) to stay faithful to."""
        ...


@dataclass(frozen=True)
class VideoPoll:
    status: Literal["pending", "done", "failed"]
    video: bytes | None = None  # the clip (MP4) when done
    error: str = ""
    progress: int | None = None  # 0..100 when the provider tells


class VideoProvider(Protocol):
    name: str
    # Whether a request is done when `submit` returns (the local provider renders there).
    instant: bool

    @property
    def model(self) -> str: ...

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
        """Start an image-to-video job; returns the provider's request id. Must not block long."""
        ...

    def poll(self, request_id: str, *, completed: bool = False) -> VideoPoll:
        """Where the request stands; when done, the clip's bytes. `completed`: `ready` just
        said so, the status need not be asked again."""
        ...

    def ready(self, request_id: str) -> bool:
        """Cheap status check, no download: True once `poll` would not answer "pending"."""
        ...

    def cancel(self, request_id: str) -> None:
        """Stop a request in flight, so it is not billed further; an unknown or finished one is
        not an error."""
        ...
