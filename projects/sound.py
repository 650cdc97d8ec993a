"""What is spoken and what the subtitles say: a frame's dialogue without its "Name:" prefix,
and cues timed to where the stitch placed each line in the mix."""

import re
from dataclasses import dataclass
from datetime import timedelta

import srt
import webvtt

from projects.models import Frame

_PREFIX = re.compile(r"^\s*([^:\n]{1,80}?)\s*:\s*")


def _names(frame: Frame) -> set[str]:
    names = {c.name.strip().lower() for c in frame.scene.characters.all()}
    if frame.speaker is not None:
        names.add(frame.speaker.name.strip().lower())
    return names | {"narrator"}


def spoken_text(frame: Frame) -> str:
    """The words to say: each line of the dialogue, less a leading "Name:" of someone in the
    scene (the speaker is told by the voice, not read out)."""
    names = _names(frame)
    words = []
    for raw in frame.dialogue.splitlines():
        line = raw.strip()
        found = _PREFIX.match(line)
        if found and found.group(1).strip().lower() in names:
            line = line[found.end() :].strip()
        if line:
            words.append(line)
    return " ".join(words)


def subtitle_text(frame: Frame) -> str:
    """What a cue shows: the speaker's name and the line (the narrator's line alone)."""
    text = spoken_text(frame)
    if frame.speaker is not None and text:
        return f"{frame.speaker.name}: {text}"
    return text


@dataclass(frozen=True)
class Cue:
    start: float  # seconds into the film
    end: float
    text: str


def _delta(seconds: float) -> timedelta:
    return timedelta(milliseconds=round(seconds * 1000))


def srt_text(cues: list[Cue]) -> str:
    return srt.compose(
        [
            srt.Subtitle(i, _delta(c.start), _delta(c.end), c.text)
            for i, c in enumerate(cues, start=1)
        ]
    )


def _vtt_time(seconds: float) -> str:
    millis = round(seconds * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}"


def vtt_text(cues: list[Cue]) -> str:
    document = webvtt.WebVTT()
    for cue in cues:
        # A cue's text may not hold a blank line or "-->": one line, arrows spelt out.
        text = " ".join(cue.text.replace("-->", "→").split())
        document.captions.append(webvtt.Caption(_vtt_time(cue.start), _vtt_time(cue.end), text))
    return document.content
