"""Gemini providers through the real google-genai SDK against FakeGemini on loopback."""

import base64
import io
import logging
import socket
import time
from typing import Literal

import django_rq
import pytest
from google import genai
from google.genai import types
from PIL import Image
from pydantic import BaseModel

from generation.providers.base import PermanentProviderError, TransientProviderError
from generation.providers.gemini import GeminiImage, GeminiText
from generation.providers.keypool import REDIS_PREFIX
from tests.fakes import fingerprint
from tests.fakes.gemini_server import FakeGemini, tiny_png

KEY_A = "AIzaFakeKeyAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
KEY_B = "AIzaFakeKeyBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"
KEYS_BY_FINGERPRINT = {fingerprint(KEY_A): KEY_A, fingerprint(KEY_B): KEY_B}


class Character(BaseModel):
    name: str
    age: int
    role: Literal["lead", "support"]


class Cast(BaseModel):
    title: str
    characters: list[Character]


def _flush(redis) -> None:
    names = list(redis.scan_iter(f"{REDIS_PREFIX}:*"))
    if names:
        redis.delete(*names)


@pytest.fixture(scope="module")
def fake_server():
    with FakeGemini() as fake:
        yield fake


@pytest.fixture
def fake(fake_server):
    fake_server.reset()
    fake_server.latency = {"default": 0.0}
    fake_server.fail_ratio = 0.0
    return fake_server


@pytest.fixture
def redis():
    connection = django_rq.get_connection("default")
    _flush(connection)
    yield connection
    _flush(connection)


@pytest.fixture(autouse=True)
def gemini_settings(settings, fake, redis):
    settings.GEMINI_API_KEYS = [KEY_A, KEY_B]
    settings.GEMINI_BASE_URL = fake.url
    settings.GEMINI_TEXT_MODEL = "gemini-2.5-flash"
    settings.GEMINI_IMAGE_MODEL = "gemini-2.5-flash-image"
    settings.GEMINI_RPM = 1000
    settings.GEMINI_TIMEOUT = 5.0
    settings.PROVIDER_MAX_ATTEMPTS = 3
    settings.PROVIDER_BACKOFF_BASE = 0.001
    settings.PROVIDER_BACKOFF_CAP = 0.005
    return settings


def _cast() -> Cast:
    return GeminiText().generate_json(
        prompt="A heist in Lisbon", schema=Cast, system="You are a casting director"
    )


# ------------------------------------------------------------------ request shapes & parsing


def test_it_sends_the_schema_and_parses_the_answer(fake):
    cast = _cast()

    assert isinstance(cast, Cast)
    assert 1 <= len(cast.characters) <= 3
    assert cast.characters[0].role == "lead"
    [request] = fake.requests
    assert request.path == "/v1/models/gemini-2.5-flash:generateContent"
    config = request.body["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    assert set(config["responseSchema"]["properties"]) == {"title", "characters"}
    assert request.body["systemInstruction"]["parts"][0]["text"] == "You are a casting director"
    assert request.body["contents"][0]["parts"][0]["text"] == "A heist in Lisbon"


def test_it_parses_a_canned_answer(fake):
    fake.respond_json(
        {"title": "Night Train", "characters": [{"name": "Ana", "age": 41, "role": "lead"}]}
    )

    cast = _cast()

    assert cast == Cast(
        title="Night Train", characters=[Character(name="Ana", age=41, role="lead")]
    )


def test_an_answer_off_schema_is_retried(fake):
    fake.respond_json({"title": "No cast"})

    cast = _cast()

    assert cast.title
    assert fake.count() == 2


def test_it_sends_references_as_inline_data_with_the_aspect_ratio(fake):
    portrait = tiny_png("1:1", seed="portrait")
    jpeg = io.BytesIO()
    Image.new("RGB", (8, 8)).save(jpeg, format="JPEG")

    image = GeminiImage().generate_image(
        prompt="Ana on the night train",
        references=[portrait, jpeg.getvalue()],
        aspect_ratio="16:9",
        seed=2**40 + 5,
    )

    assert Image.open(io.BytesIO(image)).size == (64, 36)
    [request] = fake.requests
    assert request.path == "/v1/models/gemini-2.5-flash-image:generateContent"
    text, first, second = request.body["contents"][0]["parts"]
    assert text == {"text": "Ana on the night train"}
    assert first["inlineData"]["mime_type"] == "image/png"
    assert base64.urlsafe_b64decode(first["inlineData"]["data"]) == portrait
    assert second["inlineData"]["mime_type"] == "image/jpeg"
    config = request.body["generationConfig"]
    assert config["responseModalities"] == ["IMAGE"]
    assert config["imageConfig"] == {"aspectRatio": "16:9"}
    assert 0 <= config["seed"] < 2**31


# ------------------------------------------------------------------ keys and rate limits


def test_a_429_moves_to_the_next_key_and_cools_the_first(fake):
    fake.fail_next(1, status=429, retry_delay="7s")
    provider = GeminiText()

    provider.generate_json(prompt="x", schema=Cast)

    first, second = (request.key for request in fake.requests)
    assert first != second
    assert fake.count_for(KEY_A) == fake.count_for(KEY_B) == 1
    assert 6 < provider.gemini.pool.cooling_for(KEYS_BY_FINGERPRINT[first]) <= 7
    assert provider.gemini.pool.cooling_for(KEYS_BY_FINGERPRINT[second]) == 0

    provider.generate_json(prompt="y", schema=Cast)

    assert fake.requests[-1].key == second


def test_a_rate_limit_on_every_key_raises_transient_with_the_delay(fake):
    fake.fail_next(2, status=429, retry_delay="300s")

    with pytest.raises(TransientProviderError) as raised:
        _cast()

    # 300 s is longer than a worker should sleep: handed to the caller after one round of keys.
    assert raised.value.retry_after == pytest.approx(300, abs=1)
    assert fake.key_counts() == {fingerprint(KEY_A): 1, fingerprint(KEY_B): 1}


def test_cooling_keys_are_not_called_at_all(fake, settings):
    settings.PROVIDER_MAX_ATTEMPTS = 1
    provider = GeminiText()
    provider.gemini.pool.cool(KEY_A, 20)
    provider.gemini.pool.cool(KEY_B, 10)

    with pytest.raises(TransientProviderError) as raised:
        provider.generate_json(prompt="x", schema=Cast)

    assert 9 < raised.value.retry_after <= 10
    assert fake.count() == 0


def test_a_429_without_retry_info_cools_for_the_default(fake):
    fake.fail_next(1, status=429, retry_delay=None)
    provider = GeminiText()

    provider.generate_json(prompt="x", schema=Cast)

    limited = KEYS_BY_FINGERPRINT[fake.requests[0].key]
    assert 29 < provider.gemini.pool.cooling_for(limited) <= 30


def test_the_rpm_limit_spaces_requests(fake, settings):
    settings.GEMINI_RPM = 2
    provider = GeminiText(rate_window=0.4)
    started = time.monotonic()

    for _ in range(3):
        provider.generate_json(prompt="x", schema=Cast)

    assert time.monotonic() - started >= 0.3
    first, third = fake.requests[0].started_at, fake.requests[2].started_at
    assert third - first >= 0.3


# ------------------------------------------------------------------ errors


def test_server_errors_are_retried_then_succeed(fake):
    fake.fail_next(2, status=503)

    assert _cast().characters
    assert fake.count() == 3  # ours only: the SDK's own retries are off


def test_server_errors_exhaust_the_attempts(fake):
    fake.fail_next(5, status=500)

    with pytest.raises(TransientProviderError, match="500"):
        _cast()
    assert fake.count() == 3


@pytest.mark.parametrize("status", [400, 403, 404])
def test_client_errors_are_permanent_and_not_retried(fake, status):
    fake.fail_next(1, status=status, message=f"Provider says no ({status})")

    with pytest.raises(PermanentProviderError, match=rf"Provider says no \({status}\)"):
        _cast()
    assert fake.count() == 1


def test_a_blocked_prompt_is_permanent(fake):
    fake.block_next(reason="PROHIBITED_CONTENT", stage="prompt")

    with pytest.raises(PermanentProviderError, match=r"prompt blocked.*PROHIBITED_CONTENT"):
        _cast()
    assert fake.count() == 1


def test_an_image_safety_stop_is_permanent(fake):
    fake.block_next(reason="IMAGE_SAFETY", stage="candidate")

    with pytest.raises(PermanentProviderError, match="IMAGE_SAFETY"):
        GeminiImage().generate_image(prompt="x", references=[], aspect_ratio="1:1", seed=1)
    assert fake.count() == 1


def test_an_answer_without_an_image_is_permanent_with_its_reason(fake):
    fake.respond_raw(
        {
            "candidates": [
                {
                    "content": {"role": "model", "parts": [{"text": "I cannot draw that."}]},
                    "finishReason": "STOP",
                }
            ]
        }
    )

    with pytest.raises(PermanentProviderError, match=r"no image.*STOP.*I cannot draw that"):
        GeminiImage().generate_image(prompt="x", references=[], aspect_ratio="1:1", seed=1)


def test_timeouts_are_transient(fake, settings):
    settings.GEMINI_TIMEOUT = 0.2
    settings.PROVIDER_MAX_ATTEMPTS = 2
    fake.latency = {"default": 1.0}
    started = time.monotonic()

    with pytest.raises(TransientProviderError, match="Timeout"):
        _cast()

    assert time.monotonic() - started < 1.5
    assert fake.count() == 2


def test_an_unreachable_server_is_transient(settings):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings.GEMINI_BASE_URL = f"http://127.0.0.1:{port}"

    with pytest.raises(TransientProviderError, match="ConnectError"):
        _cast()


def test_no_key_appears_in_errors_or_logs(fake, caplog):
    caplog.set_level(logging.DEBUG)
    fake.fail_next(1, status=429, retry_delay="1s")
    fake.fail_next(1, status=503)
    fake.fail_next(1, status=400, message="API key not valid. Please pass a valid API key.")

    with pytest.raises(PermanentProviderError) as raised:
        _cast()

    texts = [str(raised.value), repr(raised.value), caplog.text]
    texts += [str(request.headers) for request in fake.requests]
    for text in texts:
        assert KEY_A not in text
        assert KEY_B not in text
    assert "rate limited" in caplog.text


# ------------------------------------------------------------------ the fake's streaming path


def test_the_fake_streams_scripted_text_and_function_calls(fake):
    fake.script_turn(["Hel", "lo", {"function_call": {"name": "add_scene", "args": {"n": 2}}}])
    client = genai.Client(api_key=KEY_A, http_options=types.HttpOptions(base_url=fake.url))

    chunks = list(client.models.generate_content_stream(model="gemini-2.5-flash", contents="hi"))

    assert "".join(chunk.text or "" for chunk in chunks[:2]) == "Hello"
    [call] = chunks[-1].function_calls
    assert (call.name, call.args) == ("add_scene", {"n": 2})
    assert fake.requests[0].path == "/v1/models/gemini-2.5-flash:streamGenerateContent"
    assert fake.requests[0].query == {"alt": "sse"}
