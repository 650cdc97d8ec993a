"""A fake Gemini API (generativelanguage) for google-genai pointed at it with `base_url`.

    with FakeGemini() as fake:
        client = genai.Client(api_key=..., http_options=types.HttpOptions(base_url=fake.url))

Serves `POST /{v1,v1beta,v1alpha}/models/{model}:generateContent` and
`:streamGenerateContent?alt=sse` (the SDK uses /v1/ by default with a custom base_url).

Knobs:
- `latency`: seconds per successful call, a number or per kind {"text", "image", "stream",
  "stream_chunk" (between SSE chunks), "default"}.
- `fail_next(n, status=429, retry_delay="1s", message=None, key=None)`: the next n requests
  (optionally only those made with `key`) fail with the Google error shape; a 429 carries
  `google.rpc.RetryInfo` when `retry_delay` is set.
- `fail_ratio` / `fail_status`: random failures (seeded by `seed`).
- `block_next(n, reason="SAFETY", stage="prompt"|"candidate")`: safety blocks.
- `speech_as_wav`: TTS requests (`responseModalities: ["AUDIO"]`) answer raw 16-bit PCM
  (`audio/L16;codec=pcm;rate=24000`) by default, a WAV file when True.
- `respond_json(doc, model=None)` / `respond_raw(response, model=None)`: canned answers
  for the next (non-streaming) request, else a minimal instance of the request's response
  schema for text, a small real PNG (in the requested aspect ratio) for images.
- `script_turn(chunks)`: the next streaming answer; each chunk a text delta (str) or a
  function call ({"function_call": {"name": ..., "args": {...}}}) or a raw part (dict).
Inspection: `requests` (RecordedRequest, key fingerprint instead of the key),
`key_counts()`, `count_for(key)`, `count(kind=..., model=...)`, `peak_in_flight`.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import math
import random
import re
import struct
import uuid
import wave
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from PIL import Image

from tests.fakes import Exchange, FakeServer, fingerprint

_PATH = re.compile(
    r"^/(v1|v1beta|v1alpha)/models/([^/:]+):(generateContent|streamGenerateContent)$"
)
_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_DEFAULT_MESSAGES = {
    400: "Request contains an invalid argument.",
    403: "The caller does not have permission.",
    404: "The requested model was not found.",
    429: "Resource has been exhausted (e.g. check quota).",
    500: "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting",
    503: "The model is overloaded. Please try again later.",
}


@dataclass
class _Failure:
    remaining: int
    status: int
    message: str | None
    retry_delay: str | None
    key: str | None  # fingerprint, or None for any key


@dataclass
class _Block:
    remaining: int
    reason: str
    stage: str


def google_error(status: int, message: str | None = None, retry_delay: str | None = None) -> dict:
    """The error body Google's APIs answer with."""
    error: dict[str, Any] = {
        "code": status,
        "message": message or _DEFAULT_MESSAGES.get(status, f"HTTP {status}"),
        "status": _STATUS_NAMES.get(status, "UNKNOWN"),
    }
    if retry_delay is not None:
        error["details"] = [
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": retry_delay}
        ]
    return {"error": error}


# ------------------------------------------------------------------ schema → minimal instance

_MAX_DEPTH = 8


def _schema_type(schema: Mapping[str, Any]) -> str:
    kind = schema.get("type", "")
    if isinstance(kind, list):  # JSON Schema ["string", "null"]
        kind = next((k for k in kind if str(k).lower() != "null"), "null")
    if not kind and "properties" in schema:
        return "object"
    return str(kind).lower()


def _bounded(low: float | None, high: float | None, preferred: float) -> float:
    value = preferred if low is None else max(preferred, low)
    return value if high is None else min(value, high)


def _string(schema: Mapping[str, Any], name: str) -> str:
    formats = {
        "date-time": "2025-01-01T00:00:00Z",
        "date": "2025-01-01",
        "uri": "https://example.com/",
    }
    if schema.get("format") in formats:
        return formats[schema["format"]]
    text = f"{name} …" if name else "…"
    text = text.ljust(int(schema.get("minLength") or 0), "…")
    max_length = schema.get("maxLength")
    return text[: int(max_length)] if max_length is not None else text


def instance_for_schema(
    schema: Mapping[str, Any],
    *,
    name: str = "",
    defs: Mapping[str, Any] | None = None,
    depth: int = 0,
) -> Any:
    """A minimal valid instance of a Gemini `responseSchema` (OpenAPI subset, upper-case types)
    or a JSON Schema (`responseJsonSchema`, with $defs/$ref, anyOf)."""
    if defs is None:
        defs = {**schema.get("definitions", {}), **schema.get("$defs", {})}
    if depth > _MAX_DEPTH:
        return None

    def sub(child: Mapping[str, Any], child_name: str = name) -> Any:
        return instance_for_schema(child, name=child_name, defs=defs, depth=depth + 1)

    if "$ref" in schema:
        return sub(defs[str(schema["$ref"]).rsplit("/", 1)[-1]])
    for combinator in ("anyOf", "oneOf", "allOf"):
        if schema.get(combinator):
            options = [s for s in schema[combinator] if _schema_type(s) != "null"]
            return sub((options or schema[combinator])[0])
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    kind = _schema_type(schema)
    if kind == "object":
        return {key: sub(value, key) for key, value in schema.get("properties", {}).items()}
    if kind == "array":
        items = schema.get("items", {})
        listed = _listed_values(items, defs)
        if listed:  # one item per allowed value, as a model asked about each of them answers
            key, values = listed
            return [{**sub(items), key: value} for value in values]
        count = int(_bounded(schema.get("minItems"), schema.get("maxItems"), 2))
        return [sub(items) for _ in range(count)]
    return _scalar(schema, kind, name)


def _listed_values(
    items: Mapping[str, Any], defs: Mapping[str, Any]
) -> tuple[str, list[Any]] | None:
    """An array of objects keyed by an enum property (e.g. a score per named character)."""
    if "$ref" in items:
        items = defs.get(str(items["$ref"]).rsplit("/", 1)[-1], {})
    for key, prop in (items.get("properties") or {}).items():
        if isinstance(prop, Mapping) and prop.get("enum"):
            return key, list(prop["enum"])
    return None


def _scalar(schema: Mapping[str, Any], kind: str, name: str) -> Any:
    if kind == "integer":
        return int(_bounded(schema.get("minimum"), schema.get("maximum"), 1))
    if kind == "number":
        return float(_bounded(schema.get("minimum"), schema.get("maximum"), 1.0))
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return _string(schema, name)


# ------------------------------------------------------------------ images


def tiny_png(aspect_ratio: str | None = None, *, seed: str = "", width: int = 64) -> bytes:
    """A real PNG, `width` px wide, in `aspect_ratio` ("16:9"), its colour derived from `seed`."""
    height = width
    if aspect_ratio and ":" in aspect_ratio:
        w, h = (float(x) for x in aspect_ratio.split(":", 1))
        height = max(1, round(width * h / w))
    digest = hashlib.sha256(seed.encode()).digest()
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), tuple(digest[:3])).save(buffer, format="PNG")
    return buffer.getvalue()


# ------------------------------------------------------------------ the server


class FakeGemini(FakeServer):
    def __init__(
        self,
        *,
        latency: float | Mapping[str, float] = 0.0,
        fail_ratio: float = 0.0,
        fail_status: int = 503,
        seed: int = 0,
    ):
        super().__init__(latency=latency)
        self.fail_ratio = fail_ratio
        self.fail_status = fail_status
        self._random = random.Random(seed)
        self._failures: list[_Failure] = []
        self._blocks: list[_Block] = []
        self._canned: deque[tuple[str | None, dict]] = deque()
        self._turns: deque[list[Any]] = deque()
        self.speech_as_wav = False  # True: TTS answers a WAV file (audio/wav), not raw PCM
        self.billed: list[dict] = []  # usageMetadata of every answer, as returned

    # ------------------------------------------------------------------ scripting

    def fail_next(
        self,
        n: int = 1,
        *,
        status: int = 429,
        retry_delay: str | None = "1s",
        message: str | None = None,
        key: str | None = None,
    ) -> None:
        delay = retry_delay if status == 429 else None
        with self.lock:
            self._failures.append(
                _Failure(n, status, message, delay, fingerprint(key) if key else None)
            )

    def block_next(self, n: int = 1, *, reason: str = "SAFETY", stage: str = "prompt") -> None:
        with self.lock:
            self._blocks.append(_Block(n, reason, stage))

    def respond_json(self, document: Any, *, model: str | None = None) -> None:
        self.respond_raw(_text_response(json.dumps(document), model or ""), model=model)

    def respond_raw(self, response: dict, *, model: str | None = None) -> None:
        with self.lock:
            self._canned.append((model, response))

    def script_turn(self, chunks: list[Any]) -> None:
        with self.lock:
            self._turns.append(list(chunks))

    def reset(self) -> None:
        with self.lock:
            self._failures.clear()
            self._blocks.clear()
            self._canned.clear()
            self._turns.clear()
            self.requests.clear()
            self.billed.clear()

    # ------------------------------------------------------------------ inspection

    def _bill(self, model: str, body: dict, response: dict) -> dict:
        """Usage figures as Gemini reports them (a token is about four characters; an inline
        image sent costs 258 tokens, one made 1290; 2.5 Flash thinks about half as much as it
        writes), recorded in `billed` as what this call costs."""
        meta = response.get("usageMetadata")
        if meta is None:
            return response
        if meta == _usage():  # not a canned figure: measure this call
            meta = _measured(model, body, response)
            response = {**response, "usageMetadata": meta}
        with self.lock:
            self.billed.append({"model": model, **meta})
        return response

    def billed_usage(self) -> list[dict]:
        with self.lock:
            return list(self.billed)

    def key_counts(self) -> Counter[str]:
        with self.lock:
            return Counter(r.key for r in self.requests)

    def count_for(self, key: str) -> int:
        return self.key_counts()[fingerprint(key)]

    # ------------------------------------------------------------------ serving

    def handle(self, exchange: Exchange) -> None:
        match = _PATH.match(exchange.path)
        if exchange.method != "POST" or match is None:
            self.record(exchange, kind="unknown")
            exchange.send_json(404, google_error(404, f"Unknown path {exchange.path}"))
            return
        model, method = match.group(2), match.group(3)
        body = exchange.json() or {}
        kind = "stream" if method == "streamGenerateContent" else _kind(model, body)
        entry = self.record(exchange, kind=kind, model=model)
        failure = self._take_failure(entry.key)
        if failure is not None:
            status, message, retry_delay = failure
            exchange.send_json(status, google_error(status, message, retry_delay))
            return
        self.pause(kind)
        block = self._take_block()
        if kind == "stream":
            self._stream(exchange, model, body, block)
        else:
            exchange.send_json(200, self._bill(model, body, self._answer(kind, model, body, block)))

    def _take_failure(self, key: str) -> tuple[int, str | None, str | None] | None:
        with self.lock:
            for failure in self._failures:
                if failure.remaining > 0 and failure.key in (None, key):
                    failure.remaining -= 1
                    return failure.status, failure.message, failure.retry_delay
            if self.fail_ratio and self._random.random() < self.fail_ratio:
                return self.fail_status, None, "1s" if self.fail_status == 429 else None
        return None

    def _take_block(self) -> _Block | None:
        with self.lock:
            for block in self._blocks:
                if block.remaining > 0:
                    block.remaining -= 1
                    return block
        return None

    def _take_canned(self, model: str) -> dict | None:
        with self.lock:
            for entry in self._canned:
                if entry[0] in (None, model):
                    self._canned.remove(entry)
                    return entry[1]
        return None

    def _answer(self, kind: str, model: str, body: dict, block: _Block | None) -> dict:
        if block is not None:
            return _blocked_response(block, model)
        canned = self._take_canned(model)
        if canned is not None:
            return canned
        if kind == "image":
            config = body.get("generationConfig") or {}
            ratio = (config.get("imageConfig") or {}).get("aspectRatio")
            return _image_response(tiny_png(ratio, seed=_prompt_text(body)), model)
        if kind == "audio":
            return _audio_response(_prompt_text(body), model, wav=self.speech_as_wav)
        return _text_response(_text_for(body), model)

    def _stream(self, exchange: Exchange, model: str, body: dict, block: _Block | None) -> None:
        exchange.start_stream()
        if block is not None:
            _write_event(exchange, _blocked_response(block, model))
            return
        with self.lock:
            chunks = self._turns.popleft() if self._turns else None
        if chunks is None:
            text = _text_for(body)
            chunks = [text[i : i + 16] for i in range(0, len(text), 16)] or [""]
        for index, chunk in enumerate(chunks):
            if index:
                self.pause("stream_chunk")
            last = index == len(chunks) - 1
            response = _chunk_response(_part(chunk), model, last=last)
            _write_event(exchange, self._bill(model, body, response) if last else response)


# ------------------------------------------------------------------ response bodies


def _kind(model: str, body: dict) -> str:
    modalities = (body.get("generationConfig") or {}).get("responseModalities") or []
    if "AUDIO" in [str(m).upper() for m in modalities] or "tts" in model:
        return "audio"
    if "IMAGE" in [str(m).upper() for m in modalities] or "image" in model:
        return "image"
    return "text"


# Speech as the TTS models answer it: 16-bit mono PCM at 24 kHz, billed 25 tokens a second.
SPEECH_RATE = 24_000
SPEECH_TOKENS_PER_SECOND = 25


def spoken_seconds(text: str) -> float:
    return round(0.4 + len(text.split()) / 2.5, 2)


def speech_pcm(text: str) -> bytes:
    """A tone the length the words would take to say (louder in the middle of each word)."""
    count = int(spoken_seconds(text) * SPEECH_RATE)
    pitch = 140 + int(hashlib.sha256(text.encode()).digest()[0])
    samples = (
        int(
            9000
            * math.sin(2 * math.pi * pitch * i / SPEECH_RATE)
            * abs(math.sin(math.pi * i / 9600))
        )
        for i in range(count)
    )
    return b"".join(struct.pack("<h", v) for v in samples)


def _audio_response(text: str, model: str, *, wav: bool) -> dict:
    """Raw PCM (`audio/L16;codec=pcm;rate=24000`), as the 2.5 TTS models send it; or with
    `wav`, a whole WAV file (`audio/wav`)."""
    pcm, mime = speech_pcm(text), "audio/L16;codec=pcm;rate=24000"
    if wav:
        out = io.BytesIO()
        with wave.open(out, "wb") as writer:
            writer.setnchannels(1)
            writer.setsampwidth(2)
            writer.setframerate(SPEECH_RATE)
            writer.writeframes(pcm)
        pcm, mime = out.getvalue(), "audio/wav"
    data = base64.b64encode(pcm).decode("ascii")
    response = _response([{"inlineData": {"mimeType": mime, "data": data}}], model)
    prompt = -(-len(text) // 4)
    audio = round(spoken_seconds(text) * SPEECH_TOKENS_PER_SECOND)
    response["usageMetadata"] = {
        "promptTokenCount": prompt,
        "candidatesTokenCount": audio,
        "totalTokenCount": prompt + audio,
        "candidatesTokensDetails": [{"modality": "AUDIO", "tokenCount": audio}],
    }
    return response


def _prompt_text(body: dict) -> str:
    return " ".join(
        part.get("text", "")
        for content in body.get("contents") or []
        for part in content.get("parts") or []
    )


# FilmStudio's prompts say how many items they want ("Create 4 new characters", "exactly 6
# scenes"): answering that many keeps whole pipelines runnable against the fake.
_ASKED_COUNT = re.compile(r"(?:exactly|Create) (\d+) ")


def _text_for(body: dict) -> str:
    config = body.get("generationConfig") or {}
    schema = config.get("responseJsonSchema") or config.get("responseSchema")
    if schema:
        document = instance_for_schema(schema)
        asked = _ASKED_COUNT.search(_prompt_text(body))
        if asked and isinstance(document, dict):
            for key, value in document.items():
                if isinstance(value, list) and value:
                    document[key] = [_distinct(value[0], i) for i in range(int(asked.group(1)))]
        _name_the_cast(document, _prompt_text(body))
        _name_the_objects(document, _prompt_text(body))
        return json.dumps(document)
    if config.get("responseMimeType") == "application/json":
        return "{}"
    return "A fake answer from the fake Gemini."


_CAST_LINE = re.compile(r"^- (.+?) \(", re.MULTILINE)


def _name_the_cast(document: Any, prompt: str) -> None:
    """Who is present, as a model answers: from an enum of names it picks names the schema
    allows (a different pair per item); given free strings it writes what it likes, here the
    first name alone ("Mara" for "Mara Vance"), the way models shorten and paraphrase."""
    cast = _CAST_LINE.findall(prompt)
    if not cast:
        return
    items = document.get("scenes") or document.get("frames") or [document]
    for index, item in enumerate(i for i in items if isinstance(i, dict)):
        names = item.get("characters")
        if not isinstance(names, list) or not names:
            continue
        allowed = [n for n in cast if n in names] or None  # the enum's values came back
        pool = cast if allowed is not None else [n.split()[0] for n in cast]
        item["characters"] = [pool[(index + k) % len(pool)] for k in range(min(2, len(pool)))]


_OBJECT_LINE = re.compile(r"^\* (.+?)(?:: .*)?$", re.MULTILINE)
UNLISTED_OBJECT = "A stranger's umbrella"


def _name_the_objects(document: Any, prompt: str) -> None:
    """The objects each scene shows, as a model answers: scene i names the listed object i (in
    turn), spelled as listed in even scenes and paraphrased in odd ones ("the brass lamp" for
    "Brass lamp"); every third scene also names one that was never listed."""
    listed = _OBJECT_LINE.findall(prompt)
    if not listed or not isinstance(document, dict):
        return
    items = [i for i in document.get("scenes") or [] if isinstance(i, dict) and "objects" in i]
    for index, item in enumerate(items):
        name = listed[index % len(listed)]
        item["objects"] = [name if index % 2 == 0 else f"the {name.lower()}"]
        if index % 3 == 2:
            item["objects"].append(UNLISTED_OBJECT)


def _distinct(item: Any, index: int) -> Any:
    """Copies of a generated item with distinct strings (names must differ)."""
    if isinstance(item, dict):
        return {k: f"{v} {index + 1}" if isinstance(v, str) else v for k, v in item.items()}
    return item


def _measured(model: str, body: dict, response: dict) -> dict:
    images_in = sum(
        1
        for content in body.get("contents") or []
        for part in content.get("parts") or []
        if "inlineData" in part
    )
    prompt = -(-len(_prompt_text(body)) // 4) + 258 * images_in
    parts = [
        part
        for candidate in response.get("candidates") or []
        for part in (candidate.get("content") or {}).get("parts") or []
    ]
    if not parts:  # blocked: the prompt is billed, nothing was written
        return {"promptTokenCount": prompt, "totalTokenCount": prompt}
    written = sum(
        1290 if "inlineData" in part else -(-len(json.dumps(part)) // 4) for part in parts
    )
    thoughts = 0 if "image" in model else written // 2
    meta = {
        "promptTokenCount": prompt,
        "candidatesTokenCount": written,
        "totalTokenCount": prompt + written + thoughts,
    }
    if thoughts:
        meta["thoughtsTokenCount"] = thoughts
    return meta


def _usage() -> dict:
    return {"promptTokenCount": 8, "candidatesTokenCount": 8, "totalTokenCount": 16}


def _response(parts: list[dict], model: str, finish: str | None = "STOP") -> dict:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    return {
        "candidates": [candidate],
        "usageMetadata": _usage(),
        "modelVersion": model,
        "responseId": uuid.uuid4().hex,
    }


def _text_response(text: str, model: str) -> dict:
    return _response([{"text": text}], model)


def _image_response(png: bytes, model: str) -> dict:
    data = base64.b64encode(png).decode("ascii")
    return _response([{"inlineData": {"mimeType": "image/png", "data": data}}], model)


def _blocked_response(block: _Block, model: str) -> dict:
    if block.stage == "prompt":
        return {
            "promptFeedback": {"blockReason": block.reason},
            "usageMetadata": _usage(),
            "modelVersion": model,
        }
    return {
        "candidates": [{"finishReason": block.reason, "index": 0}],
        "usageMetadata": _usage(),
        "modelVersion": model,
    }


def _part(chunk: Any) -> dict:
    if isinstance(chunk, str):
        return {"text": chunk}
    call = chunk.get("function_call") or chunk.get("functionCall")
    if call is not None:
        return {"functionCall": {"name": call["name"], "args": call.get("args", {})}}
    return dict(chunk)


def _chunk_response(part: dict, model: str, *, last: bool) -> dict:
    response = _response([part], model, finish="STOP" if last else None)
    if not last:
        del response["usageMetadata"]
    return response


def _write_event(exchange: Exchange, payload: dict) -> None:
    exchange.write(b"data: " + json.dumps(payload).encode() + b"\r\n\r\n")
