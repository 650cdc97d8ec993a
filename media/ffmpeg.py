"""ffmpeg toolkit: probe, normalize, still-to-clip, stitch and poster frames.

Pure module (no Django): every parameter is passed explicitly so it can run in web workers,
RQ jobs, scripts and benchmarks alike. Filter graphs are built with ffmpeg-python and executed
through ``subprocess.run`` so that every call has a timeout and a readable error.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import re
import secrets
import shutil
import struct
import subprocess
import tempfile
import textwrap
import time
import wave
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import ffmpeg
import imageio_ffmpeg

log = logging.getLogger(__name__)

StrPath = str | Path
Stream = ffmpeg.nodes.FilterableStream

VIDEO_CODEC = "libx264"
VIDEO_PRESET = "veryfast"
VIDEO_CRF = 23
PIX_FMT = "yuv420p"
AUDIO_CODEC = "aac"
AUDIO_RATE = 48_000
AUDIO_CHANNELS = 2
AUDIO_LAYOUT = "stereo"
AUDIO_BITRATE = "128k"

CAPTION_FONTS = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
)
STDERR_TAIL_LINES = 20
KEN_BURNS_ZOOM = 0.15

_GLOBAL_ARGS = ("-hide_banner", "-nostdin", "-nostats")


def _input_options(input_format: str | None) -> dict[str, str]:
    """How a file is opened: through the file protocol only (a playlist cannot make ffmpeg
    fetch a URL), and with `input_format` as the only demuxer tried when given (an HLS
    playlist named clip.mp4 could otherwise read any local file into the film)."""
    options = {"protocol_whitelist": "file"}
    if input_format:
        options["f"] = input_format
    return options


def _input_args(input_format: str | None) -> list[str]:
    options = _input_options(input_format).items()
    return [arg for key, value in options for arg in (f"-{key}", value)]


class FFmpegError(RuntimeError):
    """An ffmpeg invocation failed or timed out; carries the tail of its stderr."""

    def __init__(self, purpose: str, stderr_tail: str = "", stderr: str = "") -> None:
        self.purpose = purpose
        self.stderr_tail = stderr_tail
        self.stderr = stderr or stderr_tail  # all of it, when the run got that far
        message = purpose
        if stderr_tail:
            message += f"\n--- ffmpeg stderr (tail) ---\n{stderr_tail}"
        super().__init__(message)


@dataclass(frozen=True)
class MediaInfo:
    duration: float
    width: int
    height: int
    fps: float
    video_codec: str
    pix_fmt: str
    has_audio: bool
    audio_codec: str | None
    audio_rate: int | None
    audio_channels: int | None


@dataclass(frozen=True)
class CanonicalFormat:
    width: int
    height: int
    fps: int = 24


@dataclass(frozen=True)
class StitchResult:
    method: str  # "copy" | "reencode"
    info: MediaInfo


# --------------------------------------------------------------------------- binary & running


@functools.cache
def ffmpeg_binary() -> str:
    """FFMPEG_BINARY when set; else the static build imageio-ffmpeg ships; else ffmpeg on PATH.

    Static first: every probe, clip, mix and stitch is a fresh process, and the static binary
    starts in about 11 ms where Debian's (linked against 215 shared libraries) takes about
    60 ms. It has every filter used here (libass subtitles, drawtext with fontconfig,
    ebur128, sidechaincompress, loudnorm); nothing here needs ffprobe (probes read `ffmpeg -i`)."""
    override = os.environ.get("FFMPEG_BINARY")
    if override:
        return shutil.which(override) or override
    try:
        # The bundled binary, or (for a platform without a wheel binary) whatever it finds.
        return imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError:
        pass
    system = shutil.which("ffmpeg")
    if system:
        return system
    raise FFmpegError("no ffmpeg found: install imageio-ffmpeg or ffmpeg, or set FFMPEG_BINARY")


@functools.cache
def _available_filters(binary: str) -> frozenset[str]:
    proc = subprocess.run(
        [binary, "-hide_banner", "-filters"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=30,
        check=False,
    )
    text = proc.stdout.decode("utf-8", "replace")
    return frozenset(re.findall(r"^\s*[A-Z.|]{2,3}\s+(\w+)\s", text, flags=re.MULTILINE))


def has_filter(name: str) -> bool:
    try:
        return name in _available_filters(ffmpeg_binary())
    except (OSError, subprocess.SubprocessError):
        return False


def _tail(stderr: bytes | str | None, lines: int = STDERR_TAIL_LINES) -> str:
    if not stderr:
        return ""
    if isinstance(stderr, bytes):
        stderr = stderr.decode("utf-8", "replace")
    # Progress lines are separated by \r; split on both so each counts as one line.
    kept = [line.rstrip() for line in re.split(r"[\r\n]+", stderr) if line.strip()]
    return "\n".join(kept[-lines:])


def _run(args: Sequence[str], *, purpose: str, timeout: float, check: bool = True) -> str:
    """Run ffmpeg, return its stderr; raise FFmpegError on failure or timeout."""
    if timeout <= 0:
        raise FFmpegError(f"{purpose}: timed out (no time left)")
    try:
        proc = subprocess.run(
            list(args),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise FFmpegError(f"{purpose}: timed out after {timeout:g}s", _tail(exc.stderr)) from None
    except OSError as exc:
        raise FFmpegError(f"{purpose}: could not execute {args[0]!r}: {exc}") from exc
    stderr = proc.stderr.decode("utf-8", "replace")
    if check and proc.returncode != 0:
        status = f"{purpose}: ffmpeg exited with status {proc.returncode}"
        raise FFmpegError(status, _tail(stderr), stderr)
    return stderr


def _run_graph(stream: ffmpeg.nodes.OutputStream, *, purpose: str, timeout: float) -> str:
    args = stream.global_args(*_GLOBAL_ARGS).overwrite_output().compile(cmd=ffmpeg_binary())
    return _run(args, purpose=purpose, timeout=timeout)


def _remaining(deadline: float) -> float:
    return deadline - time.monotonic()


@contextmanager
def _atomic_output(dst: Path) -> Iterator[Path]:
    """Yield a sibling temp path; move it over ``dst`` only if the block succeeds."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    # Not mkstemp: ffmpeg creates the file itself, so it gets normal umask permissions.
    tmp = dst.with_name(f".{dst.stem}.{secrets.token_hex(6)}.tmp{dst.suffix}")
    try:
        yield tmp
        if not tmp.exists() or tmp.stat().st_size == 0:
            raise FFmpegError(f"ffmpeg produced no output for {dst.name}")
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)


# --------------------------------------------------------------------------- probe

_DURATION_RE = re.compile(r"Duration:\s*(\d+):(\d+):(\d+(?:\.\d+)?)")
_STREAM_RE = re.compile(r"^\s*Stream #\d+:\d+\S*:\s*(Video|Audio):\s*(.*)$", re.MULTILINE)
_TIME_RE = re.compile(r"time=\s*(\d+):(\d+):(\d+(?:\.\d+)?)")
_SIZE_RE = re.compile(r"^(\d+)x(\d+)\b")
_RATE_RE = re.compile(r"^(\d+(?:\.\d+)?)(k?) (fps|tbr)$")
_NAMED_LAYOUTS = {"mono": 1, "stereo": 2, "downmix": 2, "quad": 4, "hexagonal": 6, "octagonal": 8}


@dataclass(frozen=True)
class _VideoStream:
    codec: str = ""
    profile: str = ""
    pix_fmt: str = ""
    width: int = 0
    height: int = 0
    fps: float = 0.0


@dataclass(frozen=True)
class _AudioStream:
    codec: str
    rate: int | None
    channels: int | None


@dataclass(frozen=True)
class _Probe:
    info: MediaInfo
    video_profile: str


def _split_top_level(text: str) -> list[str]:
    """Split a stream description on commas that are not inside (...) or [...]."""
    parts, depth, current = [], 0, []
    for char in text:
        if char in "([":
            depth += 1
        elif char in ")]":
            depth = max(0, depth - 1)
        if char == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    parts.append("".join(current).strip())
    return parts


def _hms(match: re.Match[str]) -> float:
    hours, minutes, seconds = match.groups()
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def _parse_rate(parts: list[str]) -> float:
    rates: dict[str, float] = {}
    for part in parts:
        if m := _RATE_RE.match(part):
            rates.setdefault(m.group(3), float(m.group(1)) * (1000 if m.group(2) else 1))
    return rates.get("fps") or rates.get("tbr") or 0.0


def _parse_channels(layout: str) -> int | None:
    layout = layout.split("(", maxsplit=1)[0].strip()
    if layout in _NAMED_LAYOUTS:
        return _NAMED_LAYOUTS[layout]
    if m := re.match(r"^(\d+) channels$", layout):
        return int(m.group(1))
    if m := re.match(r"^(\d+)\.(\d+)$", layout):
        return int(m.group(1)) + int(m.group(2))
    return None


def _parse_video(desc: str) -> _VideoStream:
    parts = _split_top_level(desc)
    profile = m.group(1) if (m := re.search(r"\(([^)/]+)\)", parts[0])) else ""
    size = next((m for p in parts[1:] if (m := _SIZE_RE.match(p))), None)
    # Some codecs print no pixel format, in which case the size comes second.
    has_pix_fmt = len(parts) > 1 and not _SIZE_RE.match(parts[1])
    return _VideoStream(
        codec=parts[0].split()[0],
        profile=profile,
        pix_fmt=parts[1].split("(", maxsplit=1)[0].strip() if has_pix_fmt else "",
        width=int(size.group(1)) if size else 0,
        height=int(size.group(2)) if size else 0,
        fps=_parse_rate(parts),
    )


def _parse_audio(desc: str) -> _AudioStream:
    parts = _split_top_level(desc)
    rate, channels = None, None
    for i, part in enumerate(parts):
        if m := re.match(r"^(\d+) Hz$", part):
            rate = int(m.group(1))
            if i + 1 < len(parts):
                channels = _parse_channels(parts[i + 1])
            break
    return _AudioStream(codec=parts[0].split()[0], rate=rate, channels=channels)


def _decoded_duration(path: Path, timeout: float, input_format: str | None = None) -> float:
    # Last resort for containers without a usable header: decode everything and read the
    # final progress time (hence no -nostats here).
    args = [ffmpeg_binary(), "-hide_banner", "-nostdin", *_input_args(input_format)]
    args += ["-i", str(path), "-f", "null", "-"]
    stderr = _run(args, purpose=f"measure duration of {path.name}", timeout=timeout)
    times = [_hms(m) for m in _TIME_RE.finditer(stderr)]
    return times[-1] if times else 0.0


def _described(streams: list[tuple[str, str]], duration: float) -> _Probe:
    """MediaInfo from the `Stream #...` lines ffmpeg prints for one input or output."""
    video = next(
        (_parse_video(d) for kind, d in streams if kind == "Video" and "attached pic" not in d),
        _VideoStream(),
    )
    audio = next((_parse_audio(d) for kind, d in streams if kind == "Audio"), None)
    info = MediaInfo(
        duration=duration,
        width=video.width,
        height=video.height,
        fps=video.fps,
        video_codec=video.codec,
        pix_fmt=video.pix_fmt,
        has_audio=audio is not None,
        audio_codec=audio.codec if audio else None,
        audio_rate=audio.rate if audio else None,
        audio_channels=audio.channels if audio else None,
    )
    return _Probe(info=info, video_profile=video.profile)


def _read_input(
    header: str, path: Path, stderr: str, deadline: float, input_format: str | None
) -> _Probe:
    """One input's `Input #n` section of ffmpeg's report."""
    streams = _STREAM_RE.findall(header)
    if not header.startswith("Input #") or not streams:
        raise FFmpegError(f"probe {path}: not a readable media file", _tail(stderr))
    duration = _hms(m) if (m := _DURATION_RE.search(header)) else 0.0
    if duration <= 0:
        duration = _decoded_duration(path, _remaining(deadline), input_format)
    return _described(streams, duration)


def _input_sections(stderr: str) -> list[str]:
    """The `Input #n` sections of ffmpeg's report, in order (what comes before `Output #`)."""
    header = stderr.split("\nOutput #", 1)[0]
    return [
        part
        for part in re.split(r"^(?=Input #\d+)", header, flags=re.M)
        if part.startswith("Input #")
    ]


def _probe(path: StrPath, timeout: float, input_format: str | None = None) -> _Probe:
    path = Path(path)
    deadline = time.monotonic() + timeout
    args = [ffmpeg_binary(), "-hide_banner", "-nostdin", *_input_args(input_format)]
    args += ["-i", str(path)]
    # Exit status is always 1 ("At least one output file must be specified"): judge by output.
    stderr = _run(args, purpose=f"probe {path}", timeout=timeout, check=False)
    sections = _input_sections(stderr)
    return _read_input(sections[0] if sections else "", path, stderr, deadline, input_format)


def probe(path: StrPath, *, timeout: float = 30, input_format: str | None = None) -> MediaInfo:
    return _probe(path, timeout, input_format).info


def _written(stderr: str, duration: float, purpose: str) -> MediaInfo:
    """What a run wrote, as its own report says (the `Output #0` header: codecs, size, rate,
    sound), `duration` long: the run cut it to that, so nothing probes the result again."""
    _, found, report = stderr.partition("\nOutput #0")
    streams = _STREAM_RE.findall(report)
    if not found or not streams:
        raise FFmpegError(f"{purpose}: ffmpeg reported no output streams", _tail(stderr))
    return _described(streams, duration).info


# --------------------------------------------------------------------------- formats


def canonical_size(aspect_ratio: str, base_height: int) -> tuple[int, int]:
    """Frame size for an aspect ratio; ``base_height`` is the short side."""
    try:
        a, b = (int(x) for x in aspect_ratio.split(":"))
    except ValueError:
        raise ValueError(f"aspect ratio must look like '16:9', got {aspect_ratio!r}") from None
    if a <= 0 or b <= 0 or base_height <= 0:
        raise ValueError(f"invalid aspect ratio {aspect_ratio!r} or height {base_height}")
    short = base_height - base_height % 2
    long = _even(short * max(a, b) / min(a, b))
    return (long, short) if a >= b else (short, long)


def _even(value: float) -> int:
    return max(2, math.floor(value / 2 + 0.5) * 2)


def _encode_kwargs(fmt: CanonicalFormat) -> dict[str, object]:
    return {
        "c:v": VIDEO_CODEC,
        "preset": VIDEO_PRESET,
        "crf": VIDEO_CRF,
        "profile:v": "high",
        "pix_fmt": PIX_FMT,
        # Two-second GOPs keep seeking in the editor snappy.
        "g": fmt.fps * 2,
        "c:a": AUDIO_CODEC,
        "b:a": AUDIO_BITRATE,
        "ar": AUDIO_RATE,
        "ac": AUDIO_CHANNELS,
        "movflags": "+faststart",
        "map_metadata": -1,
    }


def _silence() -> Stream:
    return ffmpeg.input(f"anullsrc=r={AUDIO_RATE}:cl={AUDIO_LAYOUT}", f="lavfi").audio


def _fit_video(stream: Stream, fmt: CanonicalFormat) -> Stream:
    return (
        stream.filter(
            "scale",
            w=fmt.width,
            h=fmt.height,
            force_original_aspect_ratio="decrease",
            force_divisible_by=2,
        )
        .filter("pad", w=fmt.width, h=fmt.height, x="(ow-iw)/2", y="(oh-ih)/2", color="black")
        .filter("setsar", "1")
        .filter("fps", fps=fmt.fps)
    )


def _frame_count(duration: float, fps: int) -> int:
    if not duration > 0 or math.isinf(duration):
        raise ValueError(f"duration must be a positive number of seconds, got {duration!r}")
    return max(1, round(duration * fps))


def _length_kwargs(frames: int, fps: int) -> dict[str, object]:
    # Cut video by frame count and audio to the same instant: when both tracks end together
    # the container duration equals the video duration, so stream-copy concatenation of such
    # clips has no timestamp gaps at the joins.
    return {"frames:v": frames, "t": f"{frames / fps:.6f}"}


# --------------------------------------------------------------------------- normalize


def normalize_clip(
    src: StrPath,
    dst: StrPath,
    *,
    fmt: CanonicalFormat,
    duration: float,
    timeout: float = 300,
    input_format: str | None = None,
    copy: bool = True,
) -> MediaInfo:
    """``src`` in the canonical format, ``duration`` seconds long: re-encoded in one ffmpeg
    run, or (unless `copy` is off) stream-copied in one when it already is exactly that
    (`_copyable`).

    The length is rounded to whole frames (at most half a frame off), for both tracks.
    ``src`` comes from outside (a provider's clip): it is read as ``input_format`` when given.
    No probe before or after the encode: an MP4's header (read in Python) says whether it has
    a sound track; another file is taken to have one, and one without is told by the run's own
    report of its input (it stops before encoding anything) and encoded again over silence.
    What was written is what the run reports."""
    frames = _frame_count(duration, fmt.fps)
    src, dst = Path(src), Path(dst)
    deadline = time.monotonic() + timeout
    purpose = f"normalize {src.name}"
    head = _mp4_head(src)
    if copy and _copyable(head, fmt, frames):
        # `frames` long to within half a frame (checked): exactly `frames` frames.
        length = frames / fmt.fps
        return _copy_clip(src, dst, input_format, length, _remaining(deadline), purpose)
    if head is not None:  # an MP4 (what providers deliver) says whether it has a sound track
        sound = any(track.handler == b"soun" for track in head.tracks)
        return _encode_clip(src, dst, fmt, frames, input_format, deadline, sound=sound)
    try:
        return _encode_clip(src, dst, fmt, frames, input_format, deadline, sound=True)
    except FFmpegError as error:
        sections = _input_sections(error.stderr)
        if not sections or not _STREAM_RE.search(sections[0]):
            raise FFmpegError(f"{purpose}: not a readable media file", error.stderr_tail) from None
        if any(kind == "Audio" for kind, _ in _STREAM_RE.findall(sections[0])):
            raise
    return _encode_clip(src, dst, fmt, frames, input_format, deadline, sound=False)


def _encode_clip(
    src: Path, dst: Path, fmt: CanonicalFormat, frames: int, input_format: str | None,
    deadline: float, *, sound: bool,
) -> MediaInfo:  # fmt: skip
    inp = ffmpeg.input(str(src), **_input_options(input_format))
    # tpad/apad make short sources long enough; the output -t then cuts everything exactly.
    video = (
        _fit_video(inp.video, fmt)
        .filter("tpad", stop_mode="clone", stop_duration=f"{frames / fmt.fps:.3f}")
        .filter("format", PIX_FMT)
    )
    if sound:
        audio = inp.audio.filter(
            "aformat", sample_rates=AUDIO_RATE, channel_layouts=AUDIO_LAYOUT
        ).filter("apad")
    else:
        audio = _silence()
    purpose = f"normalize {src.name}"
    with _atomic_output(dst) as tmp:
        out = ffmpeg.output(
            video, audio, str(tmp), **_length_kwargs(frames, fmt.fps), **_encode_kwargs(fmt)
        )
        # Without a sound track the graph cannot bind [0:a]: the run fails before encoding
        # anything, and normalize_clip reads the error's report of the input.
        stderr = _run_graph(out, purpose=purpose, timeout=_remaining(deadline))
    return _written(stderr, frames / fmt.fps, purpose)


@functools.cache
def _film_tracks(binary: str, fmt: CanonicalFormat) -> tuple[_Track, ...] | None:
    """The tracks normalize_clip's encoder writes at `fmt` (their H.264 SPS/PPS, AAC
    configuration, size and rate): one frame and its sound, encoded once per process."""
    with tempfile.TemporaryDirectory(prefix="film-format-") as workdir:
        sample = Path(workdir) / "sample.mp4"
        colour = ffmpeg.input(f"color=c=black:s={fmt.width}x{fmt.height}:r={fmt.fps}", f="lavfi")
        picture = colour.video.filter("format", PIX_FMT)
        length = _length_kwargs(1, fmt.fps)
        out = ffmpeg.output(picture, _silence(), str(sample), **length, **_encode_kwargs(fmt))
        try:
            _run_graph(out, purpose="sample the film format", timeout=30)
        except FFmpegError:
            log.warning("could not sample the film format: every clip is re-encoded")
            return None
        head = _mp4_head(sample)
    return head.tracks if head is not None else None


def sample_film_format(fmt: CanonicalFormat) -> bool:
    """Take `fmt`'s sample now (the worker, before it forks: no job process encodes it again).
    A failed sample is not kept, so that the job processes try again."""
    if _film_tracks(ffmpeg_binary(), fmt) is not None:
        return True
    _film_tracks.cache_clear()
    return False


def _copyable(head: _Mp4Head | None, fmt: CanonicalFormat, frames: int) -> bool:
    """Already the film's format as this encoder writes it, the same tracks to the byte of their
    decoder configurations (so that it joins the stream-copy stitch: a clip that only looks
    alike, from another encoder, would not decode after the first), and `frames` long within
    half a frame (the tracks end together, as normalize_clip cuts them)."""
    if head is None or abs(head.duration - frames / fmt.fps) >= 0.5 / fmt.fps:
        return False
    return head.tracks == _film_tracks(ffmpeg_binary(), fmt)


def _copy_clip(
    src: Path, dst: Path, input_format: str | None, duration: float, timeout: float,
    purpose: str,
) -> MediaInfo:  # fmt: skip
    with _atomic_output(dst) as tmp:
        args = [ffmpeg_binary(), *_GLOBAL_ARGS, "-y", *_input_args(input_format), "-i", str(src)]
        args += ["-map", "0:v:0", "-map", "0:a:0", "-c", "copy", "-movflags", "+faststart"]
        args += ["-map_metadata", "-1", str(tmp)]
        stderr = _run(args, purpose=f"{purpose} (stream copy)", timeout=timeout)
    return _written(stderr, duration, purpose)


# --------------------------------------------------------------------------- still → clip

# (zoom, horizontal pan, vertical pan); picked by seed so a shot always gets the same move.
_KEN_BURNS_MOVES = (
    ("in", "center", "center"),
    ("out", "center", "center"),
    ("hold", "forward", "center"),
    ("hold", "backward", "center"),
    ("in", "forward", "forward"),
    ("out", "backward", "backward"),
)


def _ken_burns_exprs(seed: int, frames: int) -> dict[str, str]:
    zoom, pan_x, pan_y = _KEN_BURNS_MOVES[seed % len(_KEN_BURNS_MOVES)]
    progress = f"(on/{max(1, frames - 1)})"
    z = KEN_BURNS_ZOOM
    zoom_expr = {
        "in": f"1+{z}*{progress}",
        "out": f"{1 + z}-{z}*{progress}",
        "hold": f"{1 + z}",
    }[zoom]

    def pan(axis: str, direction: str) -> str:
        slack = f"({axis}-{axis}/zoom)"
        return {
            "center": f"{slack}/2",
            "forward": f"{slack}*{progress}",
            "backward": f"{slack}*(1-{progress})",
        }[direction]

    return {"z": zoom_expr, "x": pan("iw", pan_x), "y": pan("ih", pan_y)}


def _caption_font() -> str | None:
    return next((f for f in CAPTION_FONTS if os.path.isfile(f)), None)


def _wrap_caption(caption: str, width: int, fontsize: int) -> str:
    chars_per_line = max(10, int(width / (fontsize * 0.55)))
    lines = textwrap.wrap(" ".join(caption.split()), width=chars_per_line)
    return "\n".join(lines)


def _with_caption(stream: Stream, caption: str, fmt: CanonicalFormat, workdir: Path) -> Stream:
    font = _caption_font()
    if font is None or not has_filter("drawtext"):
        log.warning("caption skipped: no font found or drawtext unavailable in %s", ffmpeg_binary())
        return stream
    fontsize = max(10, fmt.height // 18)
    textfile = workdir / "caption.txt"
    # textfile + expansion=none: the caption is rendered verbatim, so quotes, colons, percent
    # signs and backslashes need no filtergraph escaping.
    textfile.write_text(_wrap_caption(caption, fmt.width, fontsize), encoding="utf-8")
    return stream.filter(
        "drawtext",
        fontfile=font,
        textfile=str(textfile),
        expansion="none",
        fontsize=fontsize,
        fontcolor="white",
        line_spacing=max(2, fontsize // 4),
        box=1,
        boxcolor="black@0.55",
        boxborderw=max(4, fontsize // 3),
        x="(w-text_w)/2",
        y=f"h-text_h-{max(8, fmt.height // 14)}",
    )


def still_to_clip(
    image: StrPath,
    dst: StrPath,
    *,
    fmt: CanonicalFormat,
    duration: float,
    caption: str | None = None,
    seed: int = 0,
    timeout: float = 300,
) -> MediaInfo:
    """Ken Burns clip from a still, already in canonical format with a silent track.

    Like normalize_clip, the length is rounded to whole frames.
    """
    frames = _frame_count(duration, fmt.fps)
    image, dst = Path(image), Path(dst)
    deadline = time.monotonic() + timeout
    # Oversampling 2x before zoompan hides its integer-pixel crop jitter.
    work_w, work_h = fmt.width * 2, fmt.height * 2
    video = (
        ffmpeg.input(str(image))
        .video.filter("scale", w=work_w, h=work_h, force_original_aspect_ratio="increase")
        .filter("crop", w=work_w, h=work_h)
        .filter(
            "zoompan",
            d=frames,
            s=f"{fmt.width}x{fmt.height}",
            fps=fmt.fps,
            **_ken_burns_exprs(seed, frames),
        )
        .filter("setsar", "1")
    )
    with tempfile.TemporaryDirectory(prefix="still-") as workdir:
        if caption and caption.strip():
            video = _with_caption(video, caption, fmt, Path(workdir))
        video = video.filter("format", PIX_FMT)
        with _atomic_output(dst) as tmp:
            out = ffmpeg.output(
                video,
                _silence(),
                str(tmp),
                **_length_kwargs(frames, fmt.fps),
                **_encode_kwargs(fmt),
            )
            purpose = f"animate still {image.name}"
            stderr = _run_graph(out, purpose=purpose, timeout=_remaining(deadline))
    return _written(stderr, frames / fmt.fps, purpose)


# --------------------------------------------------------------------------- stitch


def _stream_signature(p: _Probe) -> tuple[object, ...]:
    i = p.info
    return (
        i.video_codec,
        p.video_profile,
        i.width,
        i.height,
        round(i.fps, 3),
        i.pix_fmt,
        i.has_audio,
        i.audio_codec,
        i.audio_rate,
        i.audio_channels,
    )


# ----- MP4 headers, read in Python: whether clips can be joined by a stream copy, without
# starting an ffmpeg per clip. Anything unexpected returns None (then ffmpeg probes them).

MOOV_LIMIT = 16 << 20  # a clip's index (its `moov` box) is a few kB per minute


class _Track(NamedTuple):
    handler: bytes  # vide, soun
    kind: bytes  # the sample entry: avc1, mp4a...
    fields: bytes  # its width and height, or its channels and sample rate
    config: bytes  # the decoder configuration: H.264 SPS/PPS, AAC AudioSpecificConfig
    timescale: int
    deltas: frozenset[int]  # the video samples' durations (one: a constant frame rate)


@dataclass(frozen=True)
class _Mp4Head:
    duration: float  # seconds (the movie header's)
    tracks: tuple[_Track, ...]


def _boxes(data: bytes, start: int = 0, end: int | None = None) -> dict[bytes, list[bytes]]:
    found: dict[bytes, list[bytes]] = {}
    end = len(data) if end is None else end
    while start + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, start)
        head = 8
        if size == 1 and start + 16 <= end:
            size, head = struct.unpack_from(">Q", data, start + 8)[0], 16
        elif size == 0:
            size = end - start
        if size < head or start + size > end:
            raise ValueError("truncated box")
        found.setdefault(kind, []).append(data[start + head : start + size])
        start += size
    return found


def _child(data: bytes, *path: bytes, skip: int = 0) -> bytes:
    for kind in path:
        data = _boxes(data, skip)[kind][0]
        skip = 0
    return data


def _moov(path: Path) -> bytes | None:
    with path.open("rb") as stream:
        total, start = os.fstat(stream.fileno()).st_size, 0
        while start + 8 <= total:
            stream.seek(start)
            head = stream.read(16)
            size, kind = struct.unpack_from(">I4s", head)
            skip = 8
            if size == 1:
                size, skip = struct.unpack_from(">Q", head, 8)[0], 16
            elif size == 0:
                size = total - start
            if size < skip:
                return None
            if kind == b"moov":
                if size > MOOV_LIMIT:
                    return None
                stream.seek(start + skip)
                return stream.read(size - skip)
            start += size
    return None


def _timing(header: bytes) -> tuple[int, int]:
    """(timescale, duration) of an mvhd or mdhd box."""
    if header[0] == 1:
        return struct.unpack_from(">IQ", header, 20)
    return struct.unpack_from(">II", header, 12)


def _descriptor(data: bytes, start: int) -> tuple[int, int, int]:
    """(tag, payload start, payload end) of an MPEG-4 descriptor (in an esds box)."""
    tag, length, pos = data[start], 0, start + 1
    for _ in range(4):
        byte = data[pos]
        pos += 1
        length = (length << 7) | (byte & 0x7F)
        if not byte & 0x80:
            break
    return tag, pos, pos + length


def _audio_config(esds: bytes) -> bytes:
    tag, start, _ = _descriptor(esds, 4)  # after the version and flags
    if tag != 0x03:
        raise ValueError("no ES descriptor")
    flags = esds[start + 2]
    start += 3 + (2 if flags & 0x80 else 0) + (2 if flags & 0x20 else 0)
    if flags & 0x40:
        start += 1 + esds[start]
    tag, start, end = _descriptor(esds, start)  # the decoder configuration
    if tag != 0x04:
        raise ValueError("no decoder configuration")
    kind = esds[start : start + 1]  # the object type: AAC, MP3...
    tag, start, end = _descriptor(esds, start + 13)  # past the buffer size and bitrates
    return kind + (esds[start:end] if tag == 0x05 else b"")


def _track(trak: bytes) -> _Track:
    mdia = _child(trak, b"mdia")
    handler = _child(mdia, b"hdlr")[8:12]
    timescale, _ = _timing(_child(mdia, b"mdhd"))
    table = _child(mdia, b"minf", b"stbl")
    entries = _boxes(_child(table, b"stsd"), 8)  # past the version, flags and entry count
    (kind, entry), *others = [(k, v[0]) for k, v in entries.items()]
    if others or len(entries[kind]) != 1:
        raise ValueError("more than one sample description")
    if handler == b"vide":
        fields, config = entry[24:28], _child(entry, b"avcC", skip=78)  # width, height
    elif handler == b"soun":
        fields, config = entry[16:18] + entry[24:28], _audio_config(_child(entry, b"esds", skip=28))
    else:
        raise ValueError(f"a {handler!r} track")
    deltas: frozenset[int] = frozenset()  # a clip's last AAC frame is shorter: not compared
    if handler == b"vide":
        stts = _child(table, b"stts")
        count = struct.unpack_from(">I", stts, 4)[0]
        deltas = frozenset(struct.unpack_from(f">{2 * count}I", stts, 8)[1::2])
    return _Track(handler, kind, fields, config, timescale, deltas)


def _joinable(heads: Sequence[_Mp4Head | None], fmt: CanonicalFormat | None) -> bool:
    """Every clip an MP4 with the same tracks, decoder configurations and frame rate (so one
    stream copy makes one valid stream), in `fmt`'s size and rate when given."""
    known = [head for head in heads if head is not None]
    if not heads or len(known) != len(heads) or len({head.tracks for head in known}) != 1:
        return False
    if fmt is None:
        return True
    video = [track for track in known[0].tracks if track.handler == b"vide"]
    if len(video) != 1:
        return False
    rates = {video[0].timescale / delta for delta in video[0].deltas if delta}
    size = struct.unpack(">HH", video[0].fields)
    return size == (fmt.width, fmt.height) and len(rates) == 1 and abs(rates.pop() - fmt.fps) < 0.01


def _mp4_head(path: Path) -> _Mp4Head | None:
    try:
        moov = _moov(path)
        if moov is None:
            return None
        boxes = _boxes(moov)
        timescale, duration = _timing(boxes[b"mvhd"][0])
        tracks = tuple(sorted((_track(trak) for trak in boxes.get(b"trak", [])), key=repr))
    except (OSError, KeyError, IndexError, ValueError, struct.error):
        return None
    if not tracks or not timescale:
        return None
    return _Mp4Head(duration / timescale, tracks)


def _matches_format(info: MediaInfo, fmt: CanonicalFormat) -> bool:
    return (info.width, info.height) == (fmt.width, fmt.height) and abs(info.fps - fmt.fps) < 0.01


def _concat_list_line(path: Path) -> str:
    text = str(path.resolve())
    if "\n" in text or "\r" in text:
        raise ValueError(f"cannot concatenate a path containing a newline: {text!r}")
    # Concat demuxer quoting: inside '...' a literal quote is written as '\''.
    return "file '" + text.replace("'", "'\\''") + "'\n"


def _concat_copy(clips: Sequence[Path], dst: Path, timeout: float) -> MediaInfo:
    """The clips joined by stream copy; what was written from the run's own report and the
    result's MP4 header (its duration), without another ffmpeg."""
    purpose = f"concatenate {len(clips)} clips"
    with tempfile.TemporaryDirectory(prefix="concat-") as workdir:
        listing = Path(workdir) / "list.txt"
        listing.write_text("".join(_concat_list_line(c) for c in clips), encoding="utf-8")
        with _atomic_output(dst) as tmp:
            out = ffmpeg.input(str(listing), f="concat", safe=0).output(
                str(tmp), c="copy", movflags="+faststart"
            )
            stderr = _run_graph(out, purpose=purpose, timeout=timeout)
    head = _mp4_head(dst)
    duration = head.duration if head else probe(dst, timeout=max(1.0, min(30, timeout))).duration
    return _written(stderr, duration, purpose)


# Inputs one probing process opens (the command line stays far below the kernel's limit).
PROBE_BATCH = 64


def _probe_all(paths: Sequence[Path], deadline: float) -> list[_Probe]:
    """Every clip probed by one ffmpeg process per PROBE_BATCH (`ffmpeg -i a -i b ...`
    reports each input in turn): probing is mostly process start-up."""
    found: list[_Probe] = []
    for begin in range(0, len(paths), PROBE_BATCH):
        found += _probe_batch(paths[begin : begin + PROBE_BATCH], deadline)
    return found


def _probe_batch(paths: Sequence[Path], deadline: float) -> list[_Probe]:
    args = [ffmpeg_binary(), "-hide_banner", "-nostdin"]
    for path in paths:
        args += [*_input_args(None), "-i", str(path)]
    timeout = min(30, _remaining(deadline))
    stderr = _run(args, purpose=f"probe {len(paths)} clips", timeout=timeout, check=False)
    sections = _input_sections(stderr)
    if len(sections) != len(paths):
        # ffmpeg stops at the first input it cannot open: probe one by one, which names it.
        return [_probe(path, min(30, _remaining(deadline))) for path in paths]
    return [
        _read_input(section, path, stderr, deadline, None)
        for section, path in zip(sections, paths, strict=True)
    ]


def stitch(
    clips: Sequence[StrPath],
    dst: StrPath,
    *,
    fmt: CanonicalFormat | None = None,
    timeout: float = 600,
    force_reencode: bool = False,
) -> StitchResult:
    """Concatenate clips: stream copy when they are uniform (and match ``fmt`` if given),
    otherwise normalize each to ``fmt`` (default: the first clip's size/fps) and copy those.
    """
    if not clips:
        raise ValueError("stitch() needs at least one clip")
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    paths = [Path(c) for c in clips]
    deadline = time.monotonic() + timeout
    # The clips' MP4 headers tell most films joinable without an ffmpeg per clip; the rest are
    # probed (one process), and copied if they look alike.
    if not force_reencode and _joinable([_mp4_head(path) for path in paths], fmt):
        return StitchResult("copy", _concat_copy(paths, dst, _remaining(deadline)))
    probes = _probe_all(paths, deadline)
    first = probes[0].info
    uniform = len({_stream_signature(p) for p in probes}) == 1
    if uniform and not force_reencode and (fmt is None or _matches_format(first, fmt)):
        return StitchResult("copy", _concat_copy(paths, dst, _remaining(deadline)))

    target = fmt or CanonicalFormat(_even(first.width), _even(first.height), round(first.fps) or 24)
    # Normalize-then-copy rather than one big concat-filter graph: it copes with clips that
    # differ in size, rate or audio presence, and reuses the tested normalize path.
    with tempfile.TemporaryDirectory(prefix=".stitch-", dir=dst.parent) as workdir:
        normalized = []
        for index, (path, p) in enumerate(zip(paths, probes, strict=True)):
            part = Path(workdir) / f"{index:04d}.mp4"
            normalize_clip(
                path, part, fmt=target, duration=p.info.duration, timeout=_remaining(deadline),
                copy=not force_reencode,
            )  # fmt: skip
            normalized.append(part)
        info = _concat_copy(normalized, dst, _remaining(deadline))
    return StitchResult("reencode", info)


# --------------------------------------------------------------------------- poster


def poster(
    video: StrPath, dst: StrPath, *, at: float | None = None, timeout: float = 60,
    info: MediaInfo | None = None,
) -> None:  # fmt: skip
    """Write one frame of ``video`` as JPEG or PNG (chosen by ``dst``'s suffix); `info` is the
    video's probe when the caller has it already."""
    video, dst = Path(video), Path(dst)
    suffix = dst.suffix.lower()
    if suffix not in {".jpg", ".jpeg", ".png"}:
        raise ValueError(f"poster must be .jpg, .jpeg or .png, got {dst.name!r}")
    deadline = time.monotonic() + timeout
    info = info or probe(video, timeout=min(30, timeout))
    if at is None:
        at = info.duration * 0.1 if info.duration > 0 else 0.5
    if info.duration > 0:
        # Seeking past the last frame yields no frame at all, so stay a frame inside.
        last_frame = info.duration - 1.0 / (info.fps or 24)
        at = min(at, max(0.0, last_frame))
    frame = ffmpeg.input(str(video), ss=f"{max(0.0, at):.3f}").video
    if suffix != ".png":
        # Full-range YUV is what JPEG expects; older mjpeg encoders reject limited range.
        frame = frame.filter("scale", out_range="full").filter("format", "yuvj420p")
    with _atomic_output(dst) as tmp:
        options: dict[str, object] = {"frames:v": 1, "update": 1}
        if suffix != ".png":
            options["q:v"] = 2
        out = ffmpeg.output(frame, str(tmp), **options)
        _run_graph(out, purpose=f"poster frame of {video.name}", timeout=_remaining(deadline))


# --------------------------------------------------------------------------- sound

# The mix: dialogue at DIALOGUE_LUFS (its peaks limited DIALOGUE_PEAK_DB above that), music and
# the clips' own sound UNDER_DB below it and ducked further while a line is spoken
# (sidechaincompress), the sum limited MIX_PEAK_DB above the dialogue and measured, so that
# one gain brings it to TARGET_LUFS (what loudnorm's second pass in linear mode does).
TARGET_LUFS = -14.0
TARGET_TRUE_PEAK = -1.0
# The gain aims a little lower than the limit: AAC encoding adds a few tenths of a dB of peak.
TRUE_PEAK_AIM = -2.0
# A sample-peak limiter lets true peaks through by up to about this much.
PEAK_MARGIN_DB = 0.5
# The film's loudness as written is this close to TARGET_LUFS, or it is levelled again (what
# the limiter took off made up for): at most MIX_TRIALS levels tried on the PCM, of which at
# most MIX_PASSES encoded (AAC).
LOUDNESS_TOLERANCE = 0.3
# Inside the target's ±1 LU with room for the AAC encoder and the meter: a level kept when no
# later one comes closer without breaking the peak.
LOUDNESS_ACCEPTABLE = 0.7
MIX_PASSES = 3
MIX_TRIALS = 6
# A level tried on the PCM is encoded when it is this close to TARGET_LUFS (AAC moves it a
# tenth or so).
TRIAL_TOLERANCE = 0.1
# A level tried on the PCM keeps this much below TARGET_TRUE_PEAK for what AAC adds; once an
# encode has shown what it adds, this much for how it varies from level to level.
ENCODER_PEAK_DB = 0.5
ENCODER_VARIANCE_DB = 0.2
# At most this much is made up (a limit far lower would stop at alimiter's floor, -24 dBFS).
MAKEUP_MAX_DB = 6.0
DIALOGUE_LUFS = -20.0
DIALOGUE_PEAK_DB = 9.0
MIX_PEAK_DB = 10.0
UNDER_DB = 8.0
MUSIC_FADE_IN = 2.0
MUSIC_FADE_OUT = 3.0
# The generated bed loops this long (its partials complete whole cycles in it).
BED_LOOP_SECONDS = 16
# Below this a stem is silence (ebur128 reports -70 LUFS for digital silence).
SILENT_LUFS = -69.0

_EBU_I = re.compile(
    r"Integrated loudness:\s*\n\s*I:\s*(-?[\d.]+|-inf) LUFS\s*\n\s*Threshold:\s*(-?[\d.]+|-inf)"
)
_EBU_LRA = re.compile(r"Loudness range:\s*\n\s*LRA:\s*(-?[\d.]+) LU")
_EBU_PEAK = re.compile(r"True peak:\s*\n\s*Peak:\s*(-?[\d.]+|-inf) dBFS")


@dataclass(frozen=True)
class Loudness:
    integrated: float  # LUFS
    true_peak: float  # dBTP (-inf when not measured)
    lra: float  # LU
    threshold: float = -70.0  # the relative gate ebur128 used, LUFS


@dataclass(frozen=True)
class PlacedLine:
    path: Path  # an audio file
    start: float  # seconds into the film


@dataclass(frozen=True)
class MixResult:
    loudness: Loudness  # of the mix as written (decoded from the AAC track)
    normalization: str  # "linear" (one gain for the whole film), "none" for silence
    gain_db: float  # what the second pass added (linear), applied to the stems too


def _number(text: str) -> float:
    return -math.inf if text == "-inf" else float(text)


def _ebur128_summary(stderr: str, what: str) -> Loudness:
    summary = stderr.rsplit("Summary:", 1)[-1]
    found_i, found_lra = _EBU_I.search(summary), _EBU_LRA.search(summary)
    if found_i is None or found_lra is None:
        raise FFmpegError(f"measure loudness of {what}: no ebur128 summary", _tail(stderr))
    found_peak = _EBU_PEAK.search(summary)
    peak = _number(found_peak.group(1)) if found_peak else -math.inf
    return Loudness(
        _number(found_i.group(1)), peak, _number(found_lra.group(1)), _number(found_i.group(2))
    )


def loudness(
    src: StrPath,
    *,
    start: float | None = None,
    end: float | None = None,
    peak: bool = True,
    timeout: float = 120,
) -> Loudness:
    """EBU R128 figures of a file's audio (or of [start, end) seconds of it): integrated
    loudness, true peak and loudness range, as `ebur128` measures them."""
    args = [ffmpeg_binary(), *_GLOBAL_ARGS]
    if start is not None:
        args += ["-ss", f"{start:.3f}"]
    if end is not None:
        args += ["-to", f"{end:.3f}"]
    meter = f"ebur128=peak={'true' if peak else 'none'}:framelog=verbose"
    args += ["-i", str(src), "-vn", "-af", meter, "-f", "null", "-"]
    stderr = _run(args, purpose=f"measure loudness of {Path(src).name}", timeout=timeout)
    return _ebur128_summary(stderr, Path(src).name)


def _gain_to(measured: float, target: float) -> float:
    return 0.0 if measured <= SILENT_LUFS else target - measured


def _stereo(label: str) -> str:
    return (
        f"{label}aformat=sample_fmts=fltp:sample_rates={AUDIO_RATE}:channel_layouts={AUDIO_LAYOUT}"
    )


def _render_measured(
    inputs: list[str], graph: str, dst: Path, *, peak: bool, purpose: str, timeout: float,
    extra_outputs: Sequence[tuple[str, Path]] = (),
) -> Loudness:  # fmt: skip
    """Run `graph` (its result labelled [out]) into `dst` (float WAV) and measure it in the same
    pass (ebur128 on a split of [out])."""
    meter = f"ebur128=peak={'true' if peak else 'none'}:framelog=verbose"
    graph += f";[out]asplit=2[keep][gauge];[gauge]{meter}[gauged]"
    args = [ffmpeg_binary(), *_GLOBAL_ARGS, "-y", *inputs, "-filter_complex", graph]
    args += ["-map", "[keep]", "-c:a", "pcm_f32le", str(dst)]
    for label, path in extra_outputs:
        args += ["-map", label, "-c:a", "pcm_f32le", str(path)]
    args += ["-map", "[gauged]", "-f", "null", "-"]
    return _ebur128_summary(_run(args, purpose=purpose, timeout=timeout), dst.name)


def _wav_seconds(path: Path) -> float | None:
    try:
        with wave.open(str(path), "rb") as sound:
            return sound.getnframes() / sound.getframerate()
    except (OSError, EOFError, wave.Error, ZeroDivisionError):
        return None


def _apart(lines: Sequence[PlacedLine], duration: float) -> bool:
    """Whether each line (a WAV file) ends before the next one starts, inside `duration`."""
    placed = sorted(lines, key=lambda line: line.start)
    for line, after in zip(placed, [*placed[1:], None], strict=True):
        seconds = _wav_seconds(line.path)
        end = after.start if after is not None else duration
        if seconds is None or line.start < 0 or line.start + seconds > end:
            return False
    return bool(placed)


def _dialogue_stem(
    lines: Sequence[PlacedLine], dst: Path, duration: float, timeout: float
) -> Loudness:
    """Every line placed at its start on one stereo track `duration` long, measured.

    Lines that do not overlap (the stitch's timeline never does) are laid end to end, each
    padded with silence to the next one's start: the track is made once. Overlapping ones
    are mixed (amix of delayed lines: each makes its silence from 0 s on, far more work)."""
    inputs, parts = [], []
    if _apart(lines, duration):
        order = sorted(range(len(lines)), key=lambda i: lines[i].start)
        ends = [lines[i].start for i in order[1:]] + [duration]
        labels = ""
        if (lead := lines[order[0]].start) > 0:  # silence until the first line
            parts.append(f"anullsrc=r={AUDIO_RATE}:cl={AUDIO_LAYOUT},atrim=0:{lead:.6f}[lead]")
            labels += "[lead]"
        for slot, (index, end) in enumerate(zip(order, ends, strict=True)):
            inputs += ["-i", str(lines[index].path)]
            length = end - lines[index].start
            parts.append(f"{_stereo(f'[{slot}:a]')},apad,atrim=0:{length:.6f}[l{slot}]")
            labels += f"[l{slot}]"
        count = labels.count("[")
        parts.append(f"{labels}concat=n={count}:v=0:a=1,atrim=0:{duration:.6f}[out]")
    else:
        for index, line in enumerate(lines):
            inputs += ["-i", str(line.path)]
            delay = max(0, round(line.start * 1000))
            parts.append(f"{_stereo(f'[{index}:a]')},adelay=delays={delay}:all=1[l{index}]")
        labels = "".join(f"[l{i}]" for i in range(len(lines)))
        mixed = f"{labels}amix=inputs={len(lines)}:normalize=0:dropout_transition=0"
        parts.append(f"{mixed},apad,atrim=0:{duration:.6f}[out]")
    return _render_measured(
        inputs, ";".join(parts), dst, peak=False, purpose=f"place {len(lines)} lines",
        timeout=timeout,
    )  # fmt: skip


def _music_stem(music: Path, dst: Path, duration: float, timeout: float) -> Loudness:
    """The music looped or cut to `duration`, faded in and out, measured."""
    fade_out = max(0.0, duration - MUSIC_FADE_OUT)
    graph = (
        f"{_stereo('[0:a]')},atrim=0:{duration:.6f},asetpts=PTS-STARTPTS,"
        f"afade=t=in:d={min(MUSIC_FADE_IN, duration / 3):.3f},"
        f"afade=t=out:st={fade_out:.3f}:d={min(MUSIC_FADE_OUT, duration):.3f}[out]"
    )
    inputs = ["-stream_loop", "-1", "-i", str(music)]
    return _render_measured(
        inputs, graph, dst, peak=False, purpose=f"lay the music {music.name}", timeout=timeout
    )


def music_bed(dst: StrPath, *, duration: float, seed: int = 0, timeout: float = 120) -> Path:
    """An offline stand-in for a score: a slow synthesized chord pad (sine partials with a
    gentle swell), the same for the same seed. Honest filler, not music anyone composed.

    At most BED_LOOP_SECONDS are made: every partial completes whole cycles in that time, so
    the bed loops without a click (the mix loops it to the film's length)."""
    roots = (110.0, 130.8125, 146.8125, 98.0, 123.5)
    root = roots[seed % len(roots)]
    step = 1 / BED_LOOP_SECONDS

    def whole(freq: float) -> float:  # a frequency with a whole number of cycles per loop
        return round(freq / step) * step

    partials = [(root, 0.22), (root * 1.5, 0.12), (root * 2, 0.10), (root * 2.52, 0.06)]
    swell = f"(0.65+0.35*sin(2*PI*t/{BED_LOOP_SECONDS / 2}))"
    left = "+".join(f"{amp}*sin(2*PI*{whole(freq):.4f}*t)" for freq, amp in partials)
    right = "+".join(f"{amp}*sin(2*PI*{whole(freq * 1.003):.4f}*t)" for freq, amp in partials)
    length = min(float(duration), BED_LOOP_SECONDS)
    source = f"aevalsrc=exprs='{swell}*({left})|{swell}*({right})':s={AUDIO_RATE}:d={length:.3f}"
    dst = Path(dst)
    args = [ffmpeg_binary(), *_GLOBAL_ARGS, "-y", "-f", "lavfi", "-i", source]
    args += ["-c:a", "pcm_s16le", str(dst)]
    _run(args, purpose="synthesize a music bed", timeout=timeout)
    return dst


def _premix(
    *, dialogue: Path | None, music: Path | None, bed: Path | None, gains: dict[str, float],
    dst: Path, duration: float, stems: Path | None, timeout: float,
) -> Loudness:  # fmt: skip
    """Dialogue over the ducked music and the clips' own (ducked) sound, limited, measured
    (true peak too) for the gain that levels it. With `stems`, also the music and the dialogue
    as they sit in the mix (music.wav, dialogue.wav)."""
    inputs: list[str] = []
    parts, mix = [], []
    outputs: list[tuple[str, Path]] = []
    index = {}
    for name, path in (("d", dialogue), ("m", music), ("b", bed)):
        if path is not None:
            index[name] = len(index)
            inputs += ["-i", str(path)]
    keys = int(music is not None) + int(bed is not None)
    if dialogue is not None:
        peak = 10 ** ((DIALOGUE_LUFS + DIALOGUE_PEAK_DB) / 20)
        source = f"[{index['d']}:a]"
        chain = (
            f"{_stereo(source)},volume={gains['d']:.2f}dB,"
            f"alimiter=limit={peak:.4f}:level=0:attack=5:release=60"
        )
        splits = 1 + keys + int(stems is not None)
        parts.append(f"{chain},asplit={splits}" + "".join(f"[d{i}]" for i in range(splits)))
        mix.append("[d0]")
        if stems is not None:
            outputs.append((f"[d{splits - 1}]", stems / "dialogue.wav"))
    key = 1

    def ducked(name: str, label: str) -> str:
        nonlocal key
        source = f"[{index[name]}:a]"
        chain = f"{_stereo(source)},volume={gains[name]:.2f}dB"
        if dialogue is None:
            parts.append(f"{chain}[{label}]")
        else:
            parts.append(f"{chain}[{label}raw]")
            # Ducked from -40 dBFS of dialogue on: a quiet voice over a swelling bed still
            # stands 10 dB clear of the music (at 0.03 one line of an offline film got 7.5).
            parts.append(
                f"[{label}raw][d{key}]sidechaincompress=threshold=0.01:ratio=10:attack=20:"
                f"release=400:makeup=1[{label}]"
            )
            key += 1
        return f"[{label}]"

    if music is not None:
        label = ducked("m", "mu")
        if stems is not None:
            parts.append(f"{label}asplit=2[mu0][mu1]")
            mix.append("[mu0]")
            outputs.append(("[mu1]", stems / "music.wav"))
        else:
            mix.append(label)
    if bed is not None:
        mix.append(ducked("b", "bd"))
    if not mix:
        parts.append(f"anullsrc=r={AUDIO_RATE}:cl={AUDIO_LAYOUT}[silence]")
        mix.append("[silence]")
    limit = 10 ** ((DIALOGUE_LUFS + MIX_PEAK_DB) / 20)
    combined = f"{''.join(mix)}amix=inputs={len(mix)}:normalize=0:dropout_transition=0"
    parts.append(
        f"{combined},alimiter=limit={limit:.4f}:level=0:attack=5:release=60,"
        f"atrim=0:{duration:.6f}[out]"
    )
    return _render_measured(
        inputs, ";".join(parts), dst, peak=True, purpose="mix the sound", timeout=timeout,
        extra_outputs=outputs,
    )  # fmt: skip


def _levels(
    lines: Sequence[PlacedLine], music: Path | None, video: Path, has_audio: bool,
    folder: Path, duration: float, deadline: float,
) -> tuple[dict[str, Path | None], dict[str, float]]:  # fmt: skip
    """The dialogue and music stems made and measured, the clips' own sound measured (side by
    side), and the gain each needs."""
    stems: dict[str, Path | None] = {
        "d": folder / "dialogue.wav" if lines else None,
        "m": folder / "music.wav" if music is not None else None,
        "b": video if has_audio else None,
    }
    work = {}
    if stems["d"] is not None:
        work["d"] = lambda: _dialogue_stem(lines, folder / "dialogue.wav", duration,
                                           _remaining(deadline))  # fmt: skip
    if music is not None:
        work["m"] = lambda: _music_stem(music, folder / "music.wav", duration, _remaining(deadline))
    if has_audio:
        work["b"] = lambda: loudness(video, peak=False, timeout=_remaining(deadline))
    with ThreadPoolExecutor(max_workers=3) as pool:
        measured = dict(zip(work, pool.map(lambda job: job(), work.values()), strict=True))
    # Under the dialogue when there is some; at its level when they are all there is.
    under = DIALOGUE_LUFS - UNDER_DB if lines else DIALOGUE_LUFS
    gains = {"d": _gain_to(measured["d"].integrated, DIALOGUE_LUFS)} if "d" in measured else {}
    for name in ("m", "b"):
        if name in measured:
            gains[name] = _gain_to(measured[name].integrated, under)
    if "b" in measured and measured["b"].integrated <= SILENT_LUFS:
        stems["b"] = None  # silent clips (the offline provider's): nothing to mix
    return stems, gains


def mix_sound(
    video: StrPath,
    dst: StrPath,
    *,
    lines: Sequence[PlacedLine],
    music: StrPath | None = None,
    stems: StrPath | None = None,
    timeout: float = 600,
) -> MixResult:
    """`video` (its own sound kept under the dialogue) with `lines` and `music` mixed in and
    normalized to TARGET_LUFS integrated, true peak at most TARGET_TRUE_PEAK: the picture is
    stream-copied, only the sound is made.

    The dialogue is brought to DIALOGUE_LUFS with its peaks limited, the music and the clips'
    sound UNDER_DB below it and ducked by it (sidechaincompress), the music faded in and out;
    the sum is limited and measured, and one gain (what loudnorm's linear second pass would
    apply) sets the level, tried on the PCM until it is on its loudness and under its peak,
    then encoded once and measured as written (`_level_mix`). With `stems` (a folder),
    the dialogue and music as they sit in the final mix are written there too (dialogue.wav,
    music.wav)."""
    video, dst = Path(video), Path(dst)
    deadline = time.monotonic() + timeout
    info = probe(video, timeout=min(30, timeout))
    with tempfile.TemporaryDirectory(prefix="mix-", dir=dst.parent) as workdir:
        folder = Path(workdir)
        source = Path(music) if music is not None else None
        parts, gains = _levels(
            lines, source, video, info.has_audio, folder, info.duration, deadline
        )
        premix = folder / "premix.wav"
        raw_stems = folder / "stems" if stems else None
        if raw_stems is not None:
            raw_stems.mkdir()
        measured = _premix(
            dialogue=parts["d"], music=parts["m"], bed=parts["b"], gains=gains, dst=premix,
            duration=info.duration, stems=raw_stems, timeout=_remaining(deadline),
        )  # fmt: skip
        normalization, gain, written = _level_mix(video, premix, measured, dst, folder, deadline)
        if raw_stems is not None and stems is not None:
            _level_stems(raw_stems, Path(stems), gain, _remaining(deadline))
    return MixResult(written, normalization, gain)


def _level_mix(
    video: Path, premix: Path, measured: Loudness, dst: Path, folder: Path, deadline: float
) -> tuple[str, float, Loudness]:
    """The premix levelled into `dst` and measured as written. Levels are tried on the PCM
    first (`_level_trial`: the level's chain measured, no file, a fraction of an AAC encode)
    until one is due to land within TRIAL_TOLERANCE of the target under the peak; that one is
    encoded (AAC, muxed with the picture, into `folder`) and measured. What the encoder moved
    it by (loudness, peak) is learnt and counted in the trials that follow, and the search goes
    on while the film is off its aim (at most MIX_PASSES encodes); the encode closest to the
    spec becomes `dst`. A peak over the aim is limited lower by the excess, and what the
    limiter took off the loudness is made up by the gain (the limit moves down with it: the
    peaks stay where they were). A dB more gain into the limiter is less than a dB louder:
    after two levels at one limit, the next gain follows the line through them."""
    headroom = extra = 0.0
    if measured.integrated <= SILENT_LUFS:
        return _encode_level(video, premix, measured, dst, deadline, (headroom, extra))
    # What the encoder adds to a level's trial (LU, dB): learnt at each encode; until the first,
    # ENCODER_PEAK_DB of room under the peak.
    moved, room = (0.0, 0.0), ENCODER_PEAK_DB
    last: tuple[float, float] | None = None  # (extra, integrated) of the level before, same limit
    best_trial: tuple[float, tuple[float, float]] | None = None  # (LU off, level) under the peak
    takes: list[tuple[Path, tuple[str, float, Loudness]]] = []
    for _ in range(MIX_TRIALS):
        level = (headroom, extra)
        trial = _level_trial(premix, measured, _remaining(deadline), *level)
        integrated, peak = trial.integrated + moved[0], trial.true_peak + moved[1]
        over = peak - (TARGET_TRUE_PEAK - room)
        short = TARGET_LUFS - integrated
        if over <= 0 and (best_trial is None or abs(short) < best_trial[0]):
            best_trial = (abs(short), level)
        if over <= 0 and abs(short) <= TRIAL_TOLERANCE:
            take = folder / f"level-{len(takes)}{dst.suffix}"
            written = _encode_level(video, premix, measured, take, deadline, level)
            takes.append((take, written))
            figures = written[2]
            moved = (figures.integrated - trial.integrated, figures.true_peak - trial.true_peak)
            room = ENCODER_VARIANCE_DB
            integrated, peak = figures.integrated, figures.true_peak
            over, short = peak - TARGET_TRUE_PEAK, TARGET_LUFS - integrated
            if (over <= 0 and abs(short) <= LOUDNESS_TOLERANCE) or len(takes) >= MIX_PASSES:
                break
        slope = 1.0
        if last is not None and extra != last[0]:
            slope = min(1.0, max(0.2, (integrated - last[1]) / (extra - last[0])))
        last = (extra, integrated)
        if over > 0:  # the limit lower by the excess, from the peak or the limit if lower
            limit = TRUE_PEAK_AIM - PEAK_MARGIN_DB - headroom
            headroom += max(0.0, limit - peak) + over + PEAK_MARGIN_DB
            last = None
        extra = max(-MAKEUP_MAX_DB, min(MAKEUP_MAX_DB, extra + short / slope))
    if not takes:  # no level came within the tolerance: the closest under the peak
        chosen = best_trial[1] if best_trial is not None else (headroom, extra)
        return _encode_level(video, premix, measured, dst, deadline, chosen)
    path, written = min(takes, key=lambda take: _off_spec(take[1][2]))
    os.replace(path, dst)
    return written


def _off_spec(figures: Loudness) -> tuple[bool, float]:
    """How far a written film is from the spec: inside it first (by its LU off the target),
    then by how much it breaks it."""
    off = abs(TARGET_LUFS - figures.integrated)
    over = max(0.0, figures.true_peak - TARGET_TRUE_PEAK)
    inside = over == 0 and off <= LOUDNESS_ACCEPTABLE
    return (not inside, off if inside else over + max(0.0, off - LOUDNESS_ACCEPTABLE))


def _encode_level(
    video: Path, premix: Path, measured: Loudness, dst: Path, deadline: float,
    level: tuple[float, float],
) -> tuple[str, float, Loudness]:  # fmt: skip
    """`_normalize_into` at `level` (headroom, extra), then the film measured as written."""
    normalization, gain = _normalize_into(
        video, premix, measured, dst, _remaining(deadline), headroom=level[0], extra=level[1]
    )
    return normalization, gain, loudness(dst, timeout=max(1.0, _remaining(deadline)))


def _level_stems(source: Path, target: Path, gain: float, timeout: float) -> None:
    """The stems at the level they have in the normalized mix."""
    target.mkdir(parents=True, exist_ok=True)
    for stem in sorted(source.glob("*.wav")):
        args = [ffmpeg_binary(), *_GLOBAL_ARGS, "-y", "-i", str(stem), "-af"]
        args += [f"volume={gain:.3f}dB", "-c:a", "pcm_s16le", str(target / stem.name)]
        _run(args, purpose=f"level the {stem.stem} stem", timeout=timeout)


def _level_chain(measured: Loudness, headroom: float, extra: float) -> tuple[float, str]:
    """The gain that brings the premix to TARGET_LUFS (its measured figures: loudnorm's second
    pass in linear mode is this gain, at the cost of resampling the film to 192 kHz and back),
    plus `extra` dB (what a limiter took off), and the filter chain applying it."""
    if measured.integrated <= SILENT_LUFS:
        return 0.0, "anull"
    gain = TARGET_LUFS - measured.integrated + extra
    # Peaks the gain would push over the aim are limited first (by a fraction of a dB in
    # practice), so that one gain serves the whole film.
    ceiling = TRUE_PEAK_AIM - PEAK_MARGIN_DB - headroom - gain
    chain = f"volume={gain:.3f}dB"
    if measured.true_peak > ceiling:
        limit = max(0.0625, 10 ** (ceiling / 20))
        chain = f"alimiter=limit={limit:.5f}:level=0:attack=2:release=50,{chain}"
    return gain, chain


def _level_trial(
    premix: Path, measured: Loudness, timeout: float, headroom: float, extra: float
) -> Loudness:
    """What the premix would measure at this level (true peak too), before any encoder."""
    _, chain = _level_chain(measured, headroom, extra)
    meter = "ebur128=peak=true:framelog=verbose"
    args = [ffmpeg_binary(), *_GLOBAL_ARGS, "-i", str(premix), "-af", f"{chain},{meter}"]
    args += ["-f", "null", "-"]
    stderr = _run(args, purpose="try a level of the mix", timeout=timeout)
    return _ebur128_summary(stderr, premix.name)


def _normalize_into(
    video: Path, premix: Path, measured: Loudness, dst: Path, timeout: float,
    headroom: float = 0.0, extra: float = 0.0,
) -> tuple[str, float]:  # fmt: skip
    """The premix at its level (`_level_chain`) muxed with the picture copied: one AAC track
    the film's length. Returns the mode ("linear", or "none" for silence) and the gain
    applied."""
    gain, chain = _level_chain(measured, headroom, extra)
    with _atomic_output(dst) as tmp:
        args = [ffmpeg_binary(), *_GLOBAL_ARGS, "-y", "-i", str(video), "-i", str(premix)]
        args += ["-filter_complex", f"[1:a]{chain}[a]"]
        args += ["-map", "0:v", "-map", "[a]", "-c:v", "copy", "-c:a", AUDIO_CODEC]
        args += ["-b:a", AUDIO_BITRATE, "-ar", str(AUDIO_RATE), "-ac", str(AUDIO_CHANNELS)]
        args += ["-shortest", "-movflags", "+faststart", "-map_metadata", "-1", str(tmp)]
        _run(args, purpose="level the mix and mux it with the picture", timeout=timeout)
    return ("none", 0.0) if measured.integrated <= SILENT_LUFS else ("linear", gain)


_PLAIN_PATH = re.compile(r"[A-Za-z0-9_./-]+")


def _filter_path(path: Path) -> str:
    """A file name inside a filtergraph: only plain characters, so no escaping is needed."""
    text = str(path.resolve())
    if not _PLAIN_PATH.fullmatch(text):
        raise FFmpegError(f"cannot name {text!r} in a filtergraph: set TMPDIR to a plain path")
    return text


def burn_subtitles(
    src: StrPath, dst: StrPath, *, subtitles: StrPath, fmt: CanonicalFormat, timeout: float = 600
) -> MediaInfo:
    """The picture re-encoded with `subtitles` (an .srt file) drawn on it; the sound copied."""
    src, dst = Path(src), Path(dst)
    deadline = time.monotonic() + timeout
    # libass lays SubRip out on a 288-line canvas scaled to the picture: sizes are in its lines
    # (40 up: clear of the caption the offline clips carry).
    style = "FontName=DejaVu Sans,FontSize=16,Outline=1.5,Shadow=0,MarginV=40"
    with tempfile.TemporaryDirectory(prefix="subs-") as workdir:
        # A plain name in a folder of our own: nothing in the path needs filtergraph escaping.
        cues = Path(workdir) / "cues.srt"
        shutil.copyfile(subtitles, cues)
        vf = f"subtitles=filename={_filter_path(cues)}:charenc=UTF-8:force_style='{style}'"
        with _atomic_output(dst) as tmp:
            args = [ffmpeg_binary(), *_GLOBAL_ARGS, "-y", "-i", str(src), "-vf", vf]
            kwargs = _encode_kwargs(fmt)
            args += ["-map", "0:v", "-map", "0:a?", "-c:a", "copy"]
            for key in ("c:v", "preset", "crf", "profile:v", "pix_fmt", "g", "movflags"):
                args += [f"-{key}", str(kwargs[key])]
            args += ["-map_metadata", "-1", str(tmp)]
            _run(args, purpose="burn in the subtitles", timeout=_remaining(deadline))
    return probe(dst, timeout=max(1.0, min(30, _remaining(deadline))))
