"""Gemini (google-genai): structured text, images and speech.

Every call goes through the model's key pool (a 429 cools that key for the server's retry delay
and moves on to the next key), the model's requests-per-minute limit, and our retry policy.
The SDK's own retries are off so that policy is the only one.
"""

import functools
import io
import logging
import re
import wave
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import django_rq
import httpx
import httpx2
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from google import genai
from google.genai import errors as genai_errors
from google.genai import types
from redis import Redis

from filmstudio.logging import redact
from generation import usage
from generation.providers.base import M, PermanentProviderError, TransientProviderError, Voice
from generation.providers.keypool import KeyPool, RateLimiter, key_fingerprint
from generation.providers.retry import call_with_retries

logger = logging.getLogger(__name__)

T = TypeVar("T")

# When a 429 carries no RetryInfo.
DEFAULT_COOLDOWN = 30.0
# A server hint longer than this is handed to the caller (retry_after) instead of sleeping in
# a worker for it.
MAX_HONORED_WAIT = 120.0
TRANSPORT_ERRORS = (httpx.TransportError, httpx2.TransportError)
_BLOCKING_FINISH_REASONS = frozenset(
    {
        "SAFETY",
        "RECITATION",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "IMAGE_RECITATION",
    }
)


@functools.lru_cache(maxsize=64)
def gemini_client(api_key: str, base_url: str, timeout_ms: int) -> genai.Client:
    """One client per key (the key travels in a header the client sets on every request)."""
    return genai.Client(
        api_key=api_key,
        http_options=types.HttpOptions(
            base_url=base_url or None,
            timeout=timeout_ms,
            retry_options=types.HttpRetryOptions(attempts=1),
        ),
    )


def _parse_duration(value: object) -> float | None:
    """A protobuf Duration as JSON: "7s", "0.5s" or {"seconds": 7, "nanos": 0}."""
    if isinstance(value, str) and value.endswith("s"):
        try:
            return max(0.0, float(value[:-1]))
        except ValueError:
            return None
    if isinstance(value, dict):
        return float(value.get("seconds", 0)) + float(value.get("nanos", 0)) / 1e9
    return None


def retry_delay(error: genai_errors.APIError) -> float | None:
    """The server's `google.rpc.RetryInfo.retryDelay`, in seconds, when it sent one."""
    body = error.details if isinstance(error.details, dict) else {}
    inner = body.get("error", body)
    details = inner.get("details") if isinstance(inner, dict) else None
    for item in details or []:
        if isinstance(item, dict) and str(item.get("@type", "")).endswith("google.rpc.RetryInfo"):
            return _parse_duration(item.get("retryDelay"))
    return None


def _enum_text(value: object) -> str:
    return str(getattr(value, "value", value))


class GeminiModel:
    """One Gemini model behind its key pool, its rate limit and our retry policy.

    `call(request)` runs `request(client)` with a client for a free key; the request raises
    the SDK's errors, which are mapped to Transient/PermanentProviderError here.
    """

    def __init__(self, model: str, *, redis: Redis | None = None, rate_window: float = 60.0):
        if not settings.GEMINI_API_KEYS:
            raise ImproperlyConfigured("GEMINI_API_KEYS is empty")
        redis = redis if redis is not None else django_rq.get_connection("default")
        self.model = model
        self.pool = KeyPool(f"gemini:{model}", settings.GEMINI_API_KEYS, redis)
        self.limiter = RateLimiter(
            f"gemini:{model}", settings.GEMINI_RPM, redis, window=rate_window
        )
        self._base_url = settings.GEMINI_BASE_URL
        self._timeout_ms = int(settings.GEMINI_TIMEOUT * 1000)

    def call(self, request: Callable[[genai.Client], T]) -> T:
        return call_with_retries(
            lambda: self._attempt(request),
            attempts=settings.PROVIDER_MAX_ATTEMPTS,
            base=settings.PROVIDER_BACKOFF_BASE,
            cap=settings.PROVIDER_BACKOFF_CAP,
            max_wait=MAX_HONORED_WAIT,
            on_retry=self._log_retry,
        )

    def _attempt(self, request: Callable[[genai.Client], T]) -> T:
        # A 429 moves on to the next key without costing an attempt; once every key has been
        # tried (or is cooling) the attempt fails with the shortest cooldown as retry_after.
        cooldowns: list[float] = []
        for _ in range(len(self.pool)):
            key = self.pool.acquire()
            self.limiter.acquire(timeout=self.limiter.window)
            try:
                return request(gemini_client(key, self._base_url, self._timeout_ms))
            except genai_errors.APIError as error:
                if error.code == 429:
                    cooldowns.append(self._cool(key, error))
                    continue
                if isinstance(error, genai_errors.ClientError) and error.code != 408:
                    raise PermanentProviderError(self._describe(error)) from error
                raise TransientProviderError(self._describe(error)) from error
            except TRANSPORT_ERRORS as error:
                message = redact(f"gemini {self.model}: {type(error).__name__}: {error}")
                raise TransientProviderError(message) from error
        raise TransientProviderError(
            f"gemini {self.model}: rate limited (429) on every key", retry_after=min(cooldowns)
        )

    def _cool(self, key: str, error: genai_errors.APIError) -> float:
        delay = retry_delay(error)
        delay = DEFAULT_COOLDOWN if delay is None else delay
        self.pool.cool(key, delay)
        logger.warning(
            "gemini %s: key %s rate limited, cooling for %.1fs",
            self.model,
            key_fingerprint(key),
            delay,
        )
        return delay

    def _describe(self, error: genai_errors.APIError) -> str:
        return redact(f"gemini {self.model}: {error.code} {error.status or ''}: {error.message}")

    def _log_retry(self, attempt: int, error: TransientProviderError, delay: float) -> None:
        logger.info("%s; retry %d in %.2fs", error.message, attempt, delay)


def _finish_text(response: types.GenerateContentResponse) -> str:
    """Why a response has no usable content, in the provider's words."""
    candidates = response.candidates or []
    if not candidates:
        return "no candidates"
    candidate = candidates[0]
    words = [f"finish reason {_enum_text(candidate.finish_reason)}"]
    if candidate.finish_message:
        words.append(candidate.finish_message)
    parts = candidate.content.parts if candidate.content else None
    words.extend(part.text[:300] for part in parts or [] if part.text)
    return "; ".join(words)


def raise_if_blocked(model: str, response: types.GenerateContentResponse) -> None:
    feedback = response.prompt_feedback
    if feedback is not None and feedback.block_reason:
        message = feedback.block_reason_message or ""
        reason = _enum_text(feedback.block_reason)
        raise PermanentProviderError(f"gemini {model}: prompt blocked ({reason}) {message}".strip())
    candidates = response.candidates or []
    finish = candidates[0].finish_reason if candidates else None
    if finish is not None and _enum_text(finish) in _BLOCKING_FINISH_REASONS:
        raise PermanentProviderError(f"gemini {model}: response blocked ({_finish_text(response)})")


def response_usage(
    model: str, response: types.GenerateContentResponse, *, images: int = 0
) -> usage.Usage:
    """What Gemini says the call used (`usage_metadata`): thinking bills as output. An image
    call without usage figures is priced per image."""
    meta = response.usage_metadata
    prompt = (meta.prompt_token_count or 0) if meta else 0
    output = ((meta.candidates_token_count or 0) + (meta.thoughts_token_count or 0)) if meta else 0
    parts: dict[str, float] = {"input_tokens": prompt, "output_tokens": output}
    if images and not output:
        parts = {"input_tokens": prompt, "image": images}
    if images:
        return usage.Usage("gemini", model, images, "image", parts)
    return usage.Usage("gemini", model, prompt + output, "tokens", parts)


def _structured(model: str, response: types.GenerateContentResponse, schema: type[M]) -> M:
    raise_if_blocked(model, response)
    if isinstance(response.parsed, schema):
        return response.parsed
    text = response.text
    if not text:
        raise PermanentProviderError(f"gemini {model}: empty response ({_finish_text(response)})")
    try:
        return schema.model_validate_json(text)
    except ValueError as error:
        # Model output varies between calls, so another try may well fit the schema.
        raise TransientProviderError(
            f"gemini {model}: response does not match {schema.__name__}: {error}"
        ) from error


def _first_image(model: str, response: types.GenerateContentResponse) -> bytes:
    raise_if_blocked(model, response)
    for candidate in response.candidates or []:
        for part in (candidate.content.parts if candidate.content else None) or []:
            blob = part.inline_data
            if blob and blob.data and (blob.mime_type or "image/").startswith("image/"):
                return blob.data
    raise PermanentProviderError(
        f"gemini {model}: no image in the response ({_finish_text(response)})"
    )


def image_mime_type(data: bytes) -> str:
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return "image/png"


class GeminiText:
    """TextProvider: JSON constrained by a Pydantic schema."""

    name = "gemini"

    def __init__(
        self, *, model: str | None = None, redis: Redis | None = None, rate_window: float = 60.0
    ):
        self.gemini = GeminiModel(
            model or settings.GEMINI_TEXT_MODEL, redis=redis, rate_window=rate_window
        )

    @property
    def model(self) -> str:
        return self.gemini.model

    def generate_json(
        self, *, prompt: str, schema: type[M], system: str = "", images: Sequence[bytes] = ()
    ) -> M:
        model = self.gemini.model
        config = types.GenerateContentConfig(
            response_mime_type="application/json",
            response_schema=schema,
            system_instruction=system or None,
        )
        contents: Any = [prompt, *_reference_parts(images)] if images else prompt

        def request(client: genai.Client) -> M:
            response = client.models.generate_content(model=model, contents=contents, config=config)
            usage.report(response_usage(model, response))
            return _structured(model, response, schema)

        return self.gemini.call(request)


class GeminiImage:
    """ImageProvider: prompt plus reference images in, one image out."""

    name = "gemini"

    def __init__(
        self, *, model: str | None = None, redis: Redis | None = None, rate_window: float = 60.0
    ):
        self.gemini = GeminiModel(
            model or settings.GEMINI_IMAGE_MODEL, redis=redis, rate_window=rate_window
        )

    @property
    def model(self) -> str:
        return self.gemini.model

    def generate_image(
        self, *, prompt: str, references: list[bytes], aspect_ratio: str, seed: int
    ) -> bytes:
        model = self.gemini.model
        contents: list[Any] = [prompt, *_reference_parts(references)]
        config = types.GenerateContentConfig(
            response_modalities=["IMAGE"],
            image_config=types.ImageConfig(aspect_ratio=aspect_ratio),
            seed=seed % 2**31,  # the API takes an int32
        )

        def request(client: genai.Client) -> bytes:
            response = client.models.generate_content(model=model, contents=contents, config=config)
            usage.report(response_usage(model, response, images=1))
            return _first_image(model, response)

        return self.gemini.call(request)


def _reference_parts(references: Iterable[bytes]) -> list[types.Part]:
    return [
        types.Part.from_bytes(data=data, mime_type=image_mime_type(data)) for data in references
    ]


# Gemini's prebuilt voices (the speech guide's list: a name and the quality it is described
# by), with the voice's register as Google's voice list gives it.
_PREBUILT_VOICES = (
    ("Zephyr", "Bright", "feminine"), ("Puck", "Upbeat", "masculine"),
    ("Charon", "Informative", "masculine"), ("Kore", "Firm", "feminine"),
    ("Fenrir", "Excitable", "masculine"), ("Leda", "Youthful", "feminine"),
    ("Orus", "Firm", "masculine"), ("Aoede", "Breezy", "feminine"),
    ("Callirrhoe", "Easy-going", "feminine"), ("Autonoe", "Bright", "feminine"),
    ("Enceladus", "Breathy", "masculine"), ("Iapetus", "Clear", "masculine"),
    ("Umbriel", "Easy-going", "masculine"), ("Algieba", "Smooth", "masculine"),
    ("Despina", "Smooth", "feminine"), ("Erinome", "Clear", "feminine"),
    ("Algenib", "Gravelly", "masculine"), ("Rasalgethi", "Informative", "masculine"),
    ("Laomedeia", "Upbeat", "feminine"), ("Achernar", "Soft", "feminine"),
    ("Alnilam", "Firm", "masculine"), ("Schedar", "Even", "masculine"),
    ("Gacrux", "Mature", "feminine"), ("Pulcherrima", "Forward", "feminine"),
    ("Achird", "Friendly", "masculine"), ("Zubenelgenubi", "Casual", "masculine"),
    ("Vindemiatrix", "Gentle", "feminine"), ("Sadachbia", "Lively", "masculine"),
    ("Sadaltager", "Knowledgeable", "masculine"), ("Sulafat", "Warm", "feminine"),
)  # fmt: skip
_QUALITY_TRAITS = {
    "Youthful": "young", "Upbeat": "young", "Lively": "young", "Excitable": "young",
    "Mature": "mature", "Knowledgeable": "mature", "Gravelly": "low", "Even": "mature",
    "Warm": "warm", "Gentle": "warm", "Soft": "warm", "Bright": "bright", "Forward": "bright",
}  # fmt: skip
GEMINI_VOICES = [
    Voice(
        name,
        "gemini",
        name,
        f"{quality} ({register} register), a Gemini prebuilt voice",
        frozenset({register, *([_QUALITY_TRAITS[quality]] if quality in _QUALITY_TRAITS else [])}),
    )
    for name, quality, register in _PREBUILT_VOICES
]
_PCM_RATE = re.compile(r"rate=(\d+)")


def wav_from_pcm(data: bytes, rate: int, *, channels: int = 1) -> bytes:
    """Raw little-endian 16-bit PCM (what the earlier TTS models return) in a WAV file."""
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(channels)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(data)
    return out.getvalue()


def _first_audio(model: str, response: types.GenerateContentResponse) -> bytes:
    """The response's audio as a WAV file: the 3.8 models send WAV, the earlier ones raw PCM
    (`audio/L16;codec=pcm;rate=24000`), which gets its header here."""
    raise_if_blocked(model, response)
    for candidate in response.candidates or []:
        for part in (candidate.content.parts if candidate.content else None) or []:
            blob = part.inline_data
            mime = (blob.mime_type or "") if blob else ""
            if not (blob and blob.data and mime.startswith("audio/")):
                continue
            if blob.data[:4] == b"RIFF":
                return blob.data
            if "l16" in mime.lower() or "pcm" in mime.lower():
                found = _PCM_RATE.search(mime)
                return wav_from_pcm(blob.data, int(found.group(1)) if found else 24000)
            raise PermanentProviderError(f"gemini {model}: unexpected audio type {mime}")
    raise PermanentProviderError(
        f"gemini {model}: no audio in the response ({_finish_text(response)})"
    )


def speech_usage(model: str, response: types.GenerateContentResponse) -> usage.Usage:
    """TTS bills the text in and the audio out, each as tokens."""
    meta = response.usage_metadata
    prompt = (meta.prompt_token_count or 0) if meta else 0
    audio = (meta.candidates_token_count or 0) if meta else 0
    parts = {"input_tokens": prompt, "audio_tokens": audio}
    return usage.Usage("gemini", model, prompt + audio, "tokens", parts)


class GeminiSpeech:
    """SpeechProvider: one line of dialogue in a prebuilt voice."""

    name = "gemini"

    def __init__(
        self, *, model: str | None = None, redis: Redis | None = None, rate_window: float = 60.0
    ):
        self.gemini = GeminiModel(
            model or settings.GEMINI_SPEECH_MODEL, redis=redis, rate_window=rate_window
        )

    @property
    def model(self) -> str:
        return self.gemini.model

    def voices(self) -> list[Voice]:
        return list(GEMINI_VOICES)

    def speak(self, *, text: str, voice: str, seed: int) -> bytes:
        model = self.gemini.model
        config = types.GenerateContentConfig(
            response_modalities=["AUDIO"],
            speech_config=types.SpeechConfig(
                voice_config=types.VoiceConfig(
                    prebuilt_voice_config=types.PrebuiltVoiceConfig(voice_name=voice)
                )
            ),
        )

        def request(client: genai.Client) -> bytes:
            response = client.models.generate_content(model=model, contents=text, config=config)
            usage.report(speech_usage(model, response))
            return _first_audio(model, response)

        return self.gemini.call(request)
