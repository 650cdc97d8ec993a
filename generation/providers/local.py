"""The offline provider: deterministic stand-ins for demos and tests, producing real media.

It reads the same prompts the real models get and answers from templates seeded by them, draws
images with Pillow and renders clips with ffmpeg (a slow zoom over the keyframe, with the line
spoken as a caption). It is not an AI: it only keeps the whole pipeline runnable offline.
"""

import hashlib
import io
import random
import re
import shutil
import subprocess
import tempfile
import textwrap
import wave
from collections.abc import Sequence
from pathlib import Path

from django.conf import settings
from PIL import Image, ImageDraw, ImageFont

from generation import usage
from generation.prompts import EDIT_PREFIX
from generation.providers.base import M, PermanentProviderError, VideoPoll, Voice
from generation.schemas import CastPlan, FramePlan, ScenePlan
from media import ffmpeg
from projects.cast import mentioned_names

FIRST = ["Mara", "Elias", "Noor", "Tobias", "Ines", "Kofi", "Lena", "Ravi", "Yuki", "Sol"]
LAST = ["Vance", "Okafor", "Lindqvist", "Moreau", "Tanaka", "Reyes", "Halloran", "Sato"]
ROLES = ["protagonist", "mentor", "rival", "confidant", "antagonist", "wildcard"]
LOOKS = ["weathered oilskin coat", "silver-rimmed glasses", "a red scarf", "a scar over one brow"]
TEMPERS = ["quiet and stubborn", "warm but guarded", "sharp-tongued", "restless and curious"]
PLACES = ["a storm-lashed lighthouse", "the harbour at dawn", "a cramped kitchen", "the cliff path"]
MOODS = ["tense", "hopeful", "melancholic", "urgent", "tender"]
CAMERAS = ["wide establishing shot, slow push in", "medium shot, handheld", "close-up, static"]
# Usage reported like Gemini's image model: tokens per reference image and per image made.
REFERENCE_TOKENS, IMAGE_TOKENS = 258, 1290
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


def _rng(*parts: object) -> random.Random:
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _title(prompt: str) -> str:
    match = re.search(r"Film title: (.+)", prompt)
    return match.group(1).strip() if match else "the film"


def _cast_names(prompt: str) -> list[str]:
    return re.findall(r"^- (.+?) \(", prompt, flags=re.MULTILINE)


_BRIEF_FIELD = r"^{}: (.*?)(?=^(?:Synopsis|Genre|Visual style|Aspect ratio): |\Z)"


def _brief_field(prompt: str, label: str) -> str:
    brief = prompt.split("\n\n", maxsplit=1)[0] if label == "Logline" else prompt
    match = re.search(_BRIEF_FIELD.format(label), brief, flags=re.MULTILINE | re.DOTALL)
    return match.group(1).strip() if match else ""


def _objects_by_scene(prompt: str, count: int, objects: list[str]) -> list[list[str]]:
    """The objects each of `count` scenes shows, from the story as the prompt's brief tells it:
    those the logline mentions are in every scene; the synopsis's sentences are shared out
    among the scenes in order, and a scene shows the objects its share mentions. Nothing
    mentioned, nothing shown (no object is made up)."""
    if not objects:
        return [[] for _ in range(count)]
    everywhere = mentioned_names(_brief_field(prompt, "Logline"), objects)
    sentences = [s for s in re.split(r"(?<=[.!?])\s+", _brief_field(prompt, "Synopsis")) if s]
    shown = []
    for i in range(count):
        start = i * len(sentences) // count
        share = " ".join(sentences[start : max(start + 1, (i + 1) * len(sentences) // count)])
        named = set(everywhere) | set(mentioned_names(share, objects))
        shown.append([o for o in objects if o in named])
    return shown


LOCAL_TEXT = ("local", "local-text")
LOCAL_IMAGE = ("local", "local-image")
LOCAL_VIDEO = ("local", "local-video")
# The speech "model" names the voice table below: a line's inputs record it, so a change of
# how a voice sounds (espeak-bea's variant, 966fc0b) makes the lines spoken before stale.
# Bump it with the table (tests/generation/test_sound.py pins the table to it).
LOCAL_SPEECH = ("local", "espeak-ng-2")


def _tokens(text: str) -> int:
    return -(-len(text) // 4)


def mean_colour(data: bytes) -> tuple[int, int, int]:
    with Image.open(io.BytesIO(data)) as image:
        small = image.convert("RGB").resize((1, 1), Image.Resampling.BOX)
        return small.getpixel((0, 0))  # type: ignore[return-value]


def mark_box(slot: int, width: int, height: int) -> tuple[int, int, int, int]:
    """Where the offline image model puts its mark for reference image `slot` (bottom left)."""
    side = max(6, height // 10)
    left = side // 2 + slot * (side + side // 2)
    top = height - side - side // 2
    return left, top, min(width - 1, left + side), top + side


def draw_marks(draw: ImageDraw.ImageDraw, references: list[bytes], width: int, height: int) -> None:
    """What the offline model takes from its references, visibly: a swatch of each one's
    colour, in order (the offline judge reads them back; `generation.consistency`)."""
    for slot, reference in enumerate(references):
        draw.rectangle(mark_box(slot, width, height), fill=mean_colour(reference))


class LocalText:
    """Reports usage the way Gemini does (tokens in and out); the rate card prices it at 0."""

    name, model = LOCAL_TEXT

    def generate_json(
        self, *, prompt: str, schema: type[M], system: str = "", images: Sequence[bytes] = ()
    ) -> M:
        """`images` are counted as sent (like Gemini's), never looked at: the offline stand-in
        of a vision question is `generation.consistency.local_verdict`."""
        answer = self._answer(prompt, schema)
        sent = _tokens(system + prompt) + REFERENCE_TOKENS * len(images)
        written = _tokens(answer.model_dump_json())
        parts = {"input_tokens": sent, "output_tokens": written}
        usage.report(usage.Usage(self.name, self.model, sent + written, "tokens", parts))
        return answer

    def _answer(self, prompt: str, schema: type[M]) -> M:
        rng = _rng(prompt)
        # How many: the plan's size (the project's numbers), never a number in the prompt's
        # text (a synopsis saying "exactly 999999999 shots" built a billion-item list).
        if issubclass(schema, CastPlan):
            return schema.model_validate(self._cast(prompt, rng, schema.size or 4))
        if issubclass(schema, ScenePlan):
            scenes = self._scenes(prompt, rng, schema.size or 3, schema.object_names)
            return schema.model_validate(scenes)
        if issubclass(schema, FramePlan):
            return schema.model_validate(self._frames(prompt, rng, schema.size or 3))
        raise PermanentProviderError(f"the local provider cannot write {schema.__name__}")

    def _cast(self, prompt: str, rng: random.Random, count: int) -> dict:
        taken = set(_cast_names(prompt))
        names = [f"{f} {s}" for f in FIRST for s in LAST if f"{f} {s}" not in taken]
        rng.shuffle(names)
        return {
            "characters": [
                {
                    "name": name,
                    "role": ROLES[i % len(ROLES)],
                    "description": f"{name.split()[0]} is bound up in {_title(prompt)}.",
                    "appearance": f"Around {rng.randint(20, 70)}, {rng.choice(LOOKS)}.",
                    "personality": rng.choice(TEMPERS),
                }
                for i, name in enumerate(names[:count])
            ]
        }

    def _scenes(
        self, prompt: str, rng: random.Random, count: int, objects: Sequence[str] = ()
    ) -> dict:
        cast = _cast_names(prompt) or ["The stranger"]
        shown = _objects_by_scene(prompt, count, list(objects))
        scenes = []
        for i in range(count):
            present = cast[: 1 + (i % len(cast))][-2:]
            place, mood = rng.choice(PLACES), rng.choice(MOODS)
            things = f" {', '.join(shown[i])} in sight." if shown[i] else ""
            scenes.append(
                {
                    "title": f"Part {i + 1}: {place.split()[-1].title()}",
                    "concise_plot": f"{' and '.join(present)} at {place}.",
                    "detailed_plot": f"In {place}, {' and '.join(present)} face what "
                    f"{_title(prompt)} asks of them; the mood turns {mood}.{things}",
                    "dialogue": "\n".join(f"{n}: We hold on until morning." for n in present),
                    "location": place,
                    "mood": mood,
                    "characters": present,
                    **({"objects": shown[i]} if objects else {}),
                }
            )
        return {"scenes": scenes}

    def _frames(self, prompt: str, rng: random.Random, count: int) -> dict:
        location = re.search(r"Location: (.+)", prompt)
        place = location.group(1).strip() if location else rng.choice(PLACES)
        cast = _cast_names(prompt)
        return {
            "frames": [
                {
                    "prompt": f"Shot {i + 1} at {place}: "
                    f"{cast[i % len(cast)] if cast else 'the sea'} in the wind.",
                    "camera": CAMERAS[i % len(CAMERAS)],
                    "dialogue": f"{cast[i % len(cast)]}: Shot {i + 1}." if cast else "",
                    "speaker": cast[i % len(cast)] if cast else "",
                    "characters": [cast[i % len(cast)]] if cast else [],
                }
                for i in range(count)
            ]
        }


class LocalImage:
    name, model = LOCAL_IMAGE

    def generate_image(
        self, *, prompt: str, references: list[bytes], aspect_ratio: str, seed: int
    ) -> bytes:
        if prompt.startswith(EDIT_PREFIX) and references:
            return self._edit(prompt, references[0])
        rng = _rng(prompt, seed)
        width, height = ffmpeg.canonical_size(aspect_ratio, settings.MEDIA_BASE_HEIGHT)
        top = tuple(rng.randrange(30, 200) for _ in range(3))
        bottom = tuple(rng.randrange(30, 200) for _ in range(3))
        image = Image.new("RGB", (width, height))
        draw = ImageDraw.Draw(image)
        for y in range(height):
            t = y / max(1, height - 1)
            draw.line(
                [(0, y), (width, y)],
                fill=tuple(int(a + (b - a) * t) for a, b in zip(top, bottom, strict=True)),
            )
        for _ in range(6 + len(references)):
            r = rng.randrange(height // 12, height // 4)
            x, y = rng.randrange(width), rng.randrange(height)
            colour = tuple(rng.randrange(60, 255) for _ in range(3))
            draw.ellipse([x - r, y - r, x + r, y + r], outline=colour, width=max(1, r // 8))
        font: ImageFont.FreeTypeFont | ImageFont.ImageFont
        try:
            font = ImageFont.truetype(FONT, max(10, height // 18))
        except OSError:
            font = ImageFont.load_default()
        # The subject (the prompt's second sentence), inside the margins the slow zoom keeps.
        sentences = prompt.split(". ")
        subject = sentences[1] if len(sentences) > 1 else sentences[0]
        lines = textwrap.wrap(subject, width=max(12, width // max(1, height // 30)))[:2]
        draw.multiline_text(
            (width // 8, height // 8), "\n".join(lines), fill=(255, 255, 255), font=font
        )
        draw_marks(draw, references, width, height)
        out = io.BytesIO()
        image.save(out, format="PNG")
        sent = _tokens(prompt) + REFERENCE_TOKENS * len(references)
        parts = {"input_tokens": sent, "output_tokens": IMAGE_TOKENS}
        usage.report(usage.Usage(self.name, self.model, 1, "image", parts))
        return out.getvalue()

    def _edit(self, prompt: str, reference: bytes) -> bytes:
        """An edit you can see: the given image recoloured (its channels rotated, red to green
        to blue) with the instruction written small along its bottom edge; the same image and
        instruction give the same bytes."""
        red, green, blue = Image.open(io.BytesIO(reference)).convert("RGB").split()
        image = Image.merge("RGB", (blue, red, green))
        width, height = image.size
        draw = ImageDraw.Draw(image)
        font: ImageFont.FreeTypeFont | ImageFont.ImageFont
        try:
            font = ImageFont.truetype(FONT, max(8, height // 36))
        except OSError:
            font = ImageFont.load_default()
        instruction = prompt.removeprefix(EDIT_PREFIX).removesuffix("; keep everything else.")
        text = textwrap.shorten(instruction, width=max(20, width // 8), placeholder="...")
        draw.rectangle([0, height - height // 18 - 4, width, height], fill=(0, 0, 0))
        draw.text((6, height - height // 18 - 2), text, fill=(255, 255, 0), font=font)
        out = io.BytesIO()
        image.save(out, format="PNG")
        parts = {"input_tokens": _tokens(prompt) + REFERENCE_TOKENS, "output_tokens": IMAGE_TOKENS}
        usage.report(usage.Usage(self.name, self.model, 1, "image", parts))
        return out.getvalue()


class LocalVideo:
    """Renders the clip at submit time; poll hands it over. Results live under VAR_DIR."""

    name, model = LOCAL_VIDEO
    instant = True

    def _path(self, request_id: str) -> Path:
        folder = Path(settings.VAR_DIR) / "local-video"
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f"{request_id}.mp4"

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
        request_id = (
            "local-" + hashlib.sha256(image + prompt.encode() + str(seed).encode()).hexdigest()[:24]
        )
        target = self._path(request_id)
        if target.exists():
            return request_id
        width, height = ffmpeg.canonical_size(aspect_ratio, settings.MEDIA_BASE_HEIGHT)
        spoken = re.search(r"Dialogue: (.+)", prompt)
        with tempfile.TemporaryDirectory() as tmp:
            still = Path(tmp) / "still.png"
            still.write_bytes(image)
            ffmpeg.still_to_clip(
                still,
                target,
                fmt=ffmpeg.CanonicalFormat(width, height, settings.MEDIA_FPS),
                duration=duration,
                caption=spoken.group(1)[:80] if spoken else None,
                seed=seed,
                timeout=settings.FFMPEG_TIMEOUT,
            )
        return request_id

    def ready(self, request_id: str) -> bool:
        return True  # rendered at submit time

    def cancel(self, request_id: str) -> None:
        self._path(request_id).unlink(missing_ok=True)

    def poll(self, request_id: str, *, completed: bool = False) -> VideoPoll:
        path = self._path(request_id)
        if not path.exists():
            return VideoPoll("failed", error=f"unknown local request {request_id}")
        data = path.read_bytes()
        path.unlink(missing_ok=True)
        return VideoPoll("done", video=data, progress=100)


# eSpeak NG voices: a language, a variant (its timbre), a pitch (0-99) and a speed (words per
# minute). A formant synthesizer: clear, robotic, nothing like an actor. It only stands in
# for a real speech model so that lines, their timing and the mix can be made offline.
# Changing a voice's variant, pitch or speed: bump LOCAL_SPEECH's model id.
_ESPEAK_VOICES: tuple[tuple[str, str, str, int, int, str, frozenset[str]], ...] = (
    ("espeak-ash", "Ash", "en-us+m3", 38, 155, "low, steady man's voice",
     frozenset({"masculine", "low", "mature"})),
    ("espeak-bea", "Bea", "en+f3", 62, 165, "bright British woman's voice",
     frozenset({"feminine", "bright", "young"})),
    ("espeak-cole", "Cole", "en-us+m1", 52, 175, "quick, light man's voice",
     frozenset({"masculine", "young", "bright"})),
    ("espeak-dora", "Dora", "en-us+f2", 45, 150, "warm, unhurried woman's voice",
     frozenset({"feminine", "warm", "mature"})),
    ("espeak-eli", "Eli", "en-gb-scotland+m2", 47, 160, "Scottish man's voice",
     frozenset({"masculine", "warm"})),
    ("espeak-fay", "Fay", "en-us+f4", 70, 170, "high, quick woman's voice",
     frozenset({"feminine", "high", "young"})),
    ("espeak-gus", "Gus", "en-gb-x-rp+m7", 30, 140, "deep, slow British man's voice",
     frozenset({"masculine", "low", "mature"})),
    ("espeak-hana", "Hana", "en-gb-x-rp+f5", 55, 155, "even, clear British woman's voice",
     frozenset({"feminine", "mature"})),
    ("espeak-ivo", "Ivo", "en-us+klatt", 50, 160, "plain synthetic voice",
     frozenset({"neutral"})),
    ("espeak-juno", "Juno", "en-us+f1", 58, 160, "clear woman's voice",
     frozenset({"feminine"})),
)  # fmt: skip
ESPEAK_SETTINGS = {v[0]: (v[2], v[3], v[4]) for v in _ESPEAK_VOICES}
LOCAL_VOICES = [
    Voice(vid, "local", name, f"{description} (eSpeak NG, robotic: an offline stand-in)", traits)
    for vid, name, _, _, _, description, traits in _ESPEAK_VOICES
]
# Gemini's TTS bills audio output as tokens; the stand-in reports its lines the same way.
AUDIO_TOKENS_PER_SECOND = 25


def espeak_binary() -> str | None:
    return shutil.which(settings.ESPEAK_BINARY)


def wav_seconds(data: bytes) -> float:
    with wave.open(io.BytesIO(data)) as reader:
        return reader.getnframes() / float(reader.getframerate() or 1)


class LocalSpeech:
    """Speech from Debian's eSpeak NG, each voice its own variant, pitch and pace."""

    name, model = LOCAL_SPEECH

    def voices(self) -> list[Voice]:
        return list(LOCAL_VOICES)

    def speak(self, *, text: str, voice: str, seed: int) -> bytes:
        binary = espeak_binary()
        if binary is None:
            raise PermanentProviderError(
                f"{settings.ESPEAK_BINARY} is not installed: the offline voices need Debian's "
                "espeak-ng (apt-get install espeak-ng), or configure Gemini speech."
            )
        if voice not in ESPEAK_SETTINGS:
            raise PermanentProviderError(f"the offline provider has no voice {voice!r}")
        variant, pitch, speed = ESPEAK_SETTINGS[voice]
        with tempfile.TemporaryDirectory(prefix="espeak-") as tmp:
            # The text goes in a file: nothing in it can be taken for an option.
            source, target = Path(tmp) / "line.txt", Path(tmp) / "line.wav"
            source.write_text(text, encoding="utf-8")
            args = [binary, "-b", "1", "-v", variant, "-p", str(pitch), "-s", str(speed)]
            args += ["-w", str(target), "-f", str(source)]
            try:
                done = subprocess.run(args, capture_output=True, timeout=60, check=False)
            except (OSError, subprocess.TimeoutExpired) as error:
                raise PermanentProviderError(f"espeak-ng failed: {error}") from error
            if done.returncode != 0 or not target.exists():
                message = done.stderr.decode("utf-8", "replace").strip()[-300:]
                raise PermanentProviderError(f"espeak-ng exited {done.returncode}: {message}")
            data = target.read_bytes()
        audio = round(wav_seconds(data) * AUDIO_TOKENS_PER_SECOND)
        parts = {"input_tokens": _tokens(text), "audio_tokens": audio}
        usage.report(usage.Usage(self.name, self.model, sum(parts.values()), "tokens", parts))
        return data
