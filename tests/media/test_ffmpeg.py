"""Tests for media.ffmpeg against a real ffmpeg binary, on tiny generated inputs."""

from __future__ import annotations

import array
import dataclasses
import os
import re
import shutil
import subprocess
from pathlib import Path

import imageio_ffmpeg
import pytest
from PIL import Image, ImageChops, ImageDraw, ImageStat

from media import ffmpeg as mf
from media.ffmpeg import CanonicalFormat, FFmpegError

FMT = CanonicalFormat(width=320, height=180, fps=24)


# --------------------------------------------------------------------------- helpers


def run_ffmpeg(*args: str) -> str:
    proc = subprocess.run(
        [mf.ffmpeg_binary(), "-hide_banner", "-nostdin", "-y", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return proc.stdout + proc.stderr


def video_packets(path: Path) -> list[tuple[str, str]]:
    """(size, md5) of every video packet, read without decoding."""
    return [(row[4], row[5]) for row in _framemd5(path, "-c", "copy")]


def decoded_frames(path: Path) -> list[str]:
    """md5 of every decoded video frame."""
    return [row[5] for row in _framemd5(path)]


def _framemd5(path: Path, *codec: str) -> list[list[str]]:
    out = subprocess.run(
        [
            *(mf.ffmpeg_binary(), "-hide_banner", "-nostdin", "-i", str(path)),
            *("-map", "0:v:0", *codec, "-f", "framemd5", "-"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    lines = [line for line in out.splitlines() if line and not line.startswith("#")]
    return [[field.strip() for field in line.split(",")] for line in lines]


def max_volume_db(path: Path) -> float:
    log = run_ffmpeg("-i", str(path), "-map", "0:a", "-af", "volumedetect", "-f", "null", "-")
    match = re.search(r"max_volume:\s*(-?[\d.]+|-inf) dB", log)
    assert match, log
    return float(match.group(1))


def frame_at(video: Path, at: float, dst: Path) -> Image.Image:
    mf.poster(video, dst, at=at)
    return Image.open(dst).convert("RGB")


def make_test_image(path: Path, size: tuple[int, int] = (480, 320)) -> Path:
    image = Image.new("RGB", size, (30, 60, 120))
    draw = ImageDraw.Draw(image)
    for x in range(0, size[0], 40):
        draw.rectangle([x, 0, x + 19, size[1]], fill=(220, 180, 40))
    for y in range(0, size[1], 40):
        draw.line([0, y, size[0], y], fill=(250, 250, 250), width=3)
    image.save(path)
    return path


@pytest.fixture(autouse=True)
def fresh_binary_cache():
    mf.ffmpeg_binary.cache_clear()
    yield
    mf.ffmpeg_binary.cache_clear()


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="module")
def known_clip(media_dir: Path) -> Path:
    """320x240 @ 25 fps H.264 + 44.1 kHz mono AAC, 1.5 s."""
    path = media_dir / "known.mp4"
    run_ffmpeg(
        *("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=1.5"),
        *("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100:duration=1.5"),
        *("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"),
        *("-c:a", "aac", "-ac", "1", str(path)),
    )
    return path


@pytest.fixture(scope="module")
def odd_clip(media_dir: Path) -> Path:
    """Square 250x250 @ 15 fps, yuv444p, no audio, 1 s: nothing like the canonical format."""
    path = media_dir / "odd.mp4"
    run_ffmpeg(
        *("-f", "lavfi", "-i", "testsrc2=size=250x250:rate=15:duration=1"),
        *("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv444p", str(path)),
    )
    return path


@pytest.fixture(scope="module")
def canonical_clips(media_dir: Path, known_clip: Path) -> list[Path]:
    clips = []
    for index, duration in enumerate((1.0, 1.5, 1.0)):
        dst = media_dir / f"canonical-{index}.mp4"
        mf.normalize_clip(known_clip, dst, fmt=FMT, duration=duration)
        clips.append(dst)
    return clips


def assert_canonical(info: mf.MediaInfo, fmt: CanonicalFormat = FMT) -> None:
    assert (info.width, info.height) == (fmt.width, fmt.height)
    # ffmpeg reports the average rate here, so timestamp gaps at stitch joins show up too.
    assert info.fps == pytest.approx(fmt.fps)
    assert info.video_codec == "h264"
    assert info.pix_fmt == "yuv420p"
    assert info.has_audio
    assert info.audio_codec == "aac"
    assert info.audio_rate == 48_000
    assert info.audio_channels == 2


# --------------------------------------------------------------------------- binary discovery


def test_ffmpeg_binary_prefers_the_static_build_of_imageio_ffmpeg(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("FFMPEG_BINARY", raising=False)
    monkeypatch.delenv("IMAGEIO_FFMPEG_EXE", raising=False)
    monkeypatch.setattr(mf.shutil, "which", lambda name: f"/usr/bin/{name}")
    binary = mf.ffmpeg_binary()
    assert binary == imageio_ffmpeg.get_ffmpeg_exe()
    assert "imageio_ffmpeg" in binary
    assert os.access(binary, os.X_OK)


def test_ffmpeg_binary_falls_back_to_ffmpeg_on_path_without_the_static_build(
    monkeypatch: pytest.MonkeyPatch,
):
    def missing() -> str:
        raise RuntimeError("No ffmpeg exe could be found.")

    monkeypatch.delenv("FFMPEG_BINARY", raising=False)
    monkeypatch.setattr(mf.imageio_ffmpeg, "get_ffmpeg_exe", missing)
    monkeypatch.setattr(mf.shutil, "which", lambda name: f"/opt/bin/{name}")
    assert mf.ffmpeg_binary() == "/opt/bin/ffmpeg"
    monkeypatch.setattr(mf.shutil, "which", lambda name: None)
    mf.ffmpeg_binary.cache_clear()
    with pytest.raises(FFmpegError, match="no ffmpeg found"):
        mf.ffmpeg_binary()


def test_ffmpeg_binary_env_var_overrides_discovery(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("FFMPEG_BINARY", "/custom/ffmpeg")
    monkeypatch.setattr(
        mf.shutil, "which", lambda name: "/usr/bin/ffmpeg" if name == "ffmpeg" else None
    )
    assert mf.ffmpeg_binary() == "/custom/ffmpeg"


def test_ffmpeg_binary_is_cached(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("FFMPEG_BINARY", raising=False)
    calls = []
    monkeypatch.setattr(
        mf.imageio_ffmpeg, "get_ffmpeg_exe", lambda: calls.append("imageio") or "/x/ffmpeg"
    )
    assert mf.ffmpeg_binary() == mf.ffmpeg_binary() == "/x/ffmpeg"
    assert calls == ["imageio"]


def test_the_static_build_has_every_filter_the_pipeline_uses():
    needed = {"loudnorm", "sidechaincompress", "ebur128", "subtitles", "drawtext", "tpad"}
    needed |= {"concat", "zoompan", "alimiter", "amix", "adelay", "aevalsrc", "anullsrc"}
    assert needed <= mf._available_filters(imageio_ffmpeg.get_ffmpeg_exe())


# --------------------------------------------------------------------------- probe


def test_probe_reports_duration_size_fps_codecs_and_audio(known_clip: Path):
    info = mf.probe(known_clip)
    assert info.duration == pytest.approx(1.5, abs=0.05)
    assert (info.width, info.height) == (320, 240)
    assert info.fps == pytest.approx(25)
    assert (info.video_codec, info.pix_fmt) == ("h264", "yuv420p")
    assert info.has_audio
    assert (info.audio_codec, info.audio_rate, info.audio_channels) == ("aac", 44_100, 1)


def test_probe_reports_missing_audio(odd_clip: Path):
    info = mf.probe(odd_clip)
    assert (info.width, info.height, info.fps, info.pix_fmt) == (250, 250, 15, "yuv444p")
    assert not info.has_audio
    assert info.audio_codec is info.audio_rate is info.audio_channels is None


def test_probe_decodes_to_measure_duration_when_the_header_has_none(tmp_path: Path):
    raw = tmp_path / "clip.h264"
    run_ffmpeg(
        *("-f", "lavfi", "-i", "testsrc2=size=160x90:rate=25:duration=1.2"),
        *("-c:v", "libx264", "-preset", "ultrafast", "-f", "h264", str(raw)),
    )
    assert "Duration: N/A" in run_ffmpeg("-i", str(raw), "-f", "null", "-")
    assert mf.probe(raw).duration == pytest.approx(1.2, abs=0.05)


# Debian's ffmpeg (5.1) where it is installed, as well as the static build (9.x) used by default.
BINARIES = [imageio_ffmpeg.get_ffmpeg_exe(), *filter(None, [shutil.which("ffmpeg")])]


@pytest.mark.parametrize("binary", BINARIES)
def test_probe_parses_the_output_of_either_ffmpeg(
    known_clip: Path, monkeypatch: pytest.MonkeyPatch, binary: str
):
    monkeypatch.setenv("FFMPEG_BINARY", binary)
    assert mf.probe(known_clip) == mf.MediaInfo(
        duration=pytest.approx(1.5, abs=0.05),
        width=320,
        height=240,
        fps=25.0,
        video_codec="h264",
        pix_fmt="yuv420p",
        has_audio=True,
        audio_codec="aac",
        audio_rate=44_100,
        audio_channels=1,
    )


# --------------------------------------------------------------------------- canonical size


@pytest.mark.parametrize(
    ("aspect", "base", "expected"),
    [
        ("16:9", 720, (1280, 720)),
        ("9:16", 720, (720, 1280)),
        ("1:1", 720, (720, 720)),
        ("16:9", 180, (320, 180)),
        ("16:9", 481, (854, 480)),
    ],
)
def test_canonical_size_treats_base_height_as_the_short_side(aspect, base, expected):
    assert mf.canonical_size(aspect, base) == expected
    assert all(side % 2 == 0 for side in expected)


@pytest.mark.parametrize("aspect", ["wide", "16/9", "0:9", "16:"])
def test_canonical_size_rejects_malformed_aspect_ratios(aspect):
    with pytest.raises(ValueError):
        mf.canonical_size(aspect, 720)


# --------------------------------------------------------------------------- normalize


def test_normalize_converts_odd_source_to_canonical_format(odd_clip: Path, tmp_path: Path):
    info = mf.normalize_clip(odd_clip, tmp_path / "out.mp4", fmt=FMT, duration=1.0)
    assert_canonical(info)
    assert info.duration == pytest.approx(1.0, abs=0.05)
    assert mf.probe(tmp_path / "out.mp4") == info


def test_normalize_adds_silent_audio_when_source_has_none(odd_clip: Path, tmp_path: Path):
    out = tmp_path / "out.mp4"
    mf.normalize_clip(odd_clip, out, fmt=FMT, duration=1.0)
    assert mf.probe(out).has_audio
    assert max_volume_db(out) < -80


def test_normalize_letterboxes_instead_of_stretching(odd_clip: Path, tmp_path: Path):
    out = tmp_path / "out.mp4"
    mf.normalize_clip(odd_clip, out, fmt=FMT, duration=1.0)
    frame = frame_at(out, 0.5, tmp_path / "frame.png")
    # A square source in a 16:9 frame leaves black bars left and right.
    assert max(ImageStat.Stat(frame.crop((0, 0, 30, 180))).mean) < 20
    assert max(ImageStat.Stat(frame.crop((130, 0, 190, 180))).mean) > 40


@pytest.mark.parametrize(
    "duration",
    [pytest.param(0.75, id="trims-long-clip"), pytest.param(2.5, id="pads-short-clip")],
)
def test_normalize_makes_clip_exactly_the_requested_duration(
    known_clip: Path, tmp_path: Path, duration: float
):
    out = tmp_path / "out.mp4"
    info = mf.normalize_clip(known_clip, out, fmt=FMT, duration=duration)
    assert info.duration == pytest.approx(duration, abs=0.05)
    assert len(video_packets(out)) == round(duration * FMT.fps)


def test_normalize_replaces_existing_destination_atomically(known_clip: Path, tmp_path: Path):
    out = tmp_path / "out.mp4"
    out.write_bytes(b"old")
    mf.normalize_clip(known_clip, out, fmt=FMT, duration=0.5)
    assert mf.probe(out).duration == pytest.approx(0.5, abs=0.05)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]


@pytest.fixture
def ffmpeg_runs(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The command line of every ffmpeg run media.ffmpeg makes from here on (the film format's
    sample, taken once per process, taken before: the counts do not depend on the order)."""
    mf.sample_film_format(FMT)
    runs: list[list[str]] = []
    real = mf.subprocess.run

    def counted(args, *rest, **kwargs):
        runs.append(list(args))
        return real(args, *rest, **kwargs)

    monkeypatch.setattr(mf.subprocess, "run", counted)
    return runs


def test_normalize_is_one_ffmpeg_run_that_reports_what_it_wrote(
    known_clip: Path, tmp_path: Path, ffmpeg_runs: list[list[str]]
):
    out = tmp_path / "out.mp4"
    info = mf.normalize_clip(known_clip, out, fmt=FMT, duration=1.25)
    assert len(ffmpeg_runs) == 1  # no probe before or after
    assert info == mf.probe(out)
    assert_canonical(info)


def test_normalize_reads_from_an_mp4_header_that_there_is_no_sound(
    odd_clip: Path, tmp_path: Path, ffmpeg_runs: list[list[str]]
):
    out = tmp_path / "out.mp4"
    info = mf.normalize_clip(odd_clip, out, fmt=FMT, duration=1.0)
    assert len(ffmpeg_runs) == 1 and "anullsrc" in " ".join(ffmpeg_runs[0])  # over silence
    assert info == mf.probe(out)
    assert max_volume_db(out) < -80


def test_normalize_tells_a_silent_source_from_its_own_failed_run(
    odd_clip: Path, tmp_path: Path, ffmpeg_runs: list[list[str]]
):
    raw = tmp_path / "clip.mkv"  # not an MP4: no header of ours to read
    run_ffmpeg("-i", str(odd_clip), "-c", "copy", str(raw))
    ffmpeg_runs.clear()
    out = tmp_path / "out.mp4"
    info = mf.normalize_clip(raw, out, fmt=FMT, duration=1.0)
    # The first run stops at binding [0:a]; the second encodes over silence.
    assert len(ffmpeg_runs) == 2
    assert "anullsrc" not in " ".join(ffmpeg_runs[0]) and "anullsrc" in " ".join(ffmpeg_runs[1])
    assert info == mf.probe(out)
    assert max_volume_db(out) < -80


def test_a_clip_already_in_the_film_format_is_stream_copied(
    canonical_clips: list[Path], tmp_path: Path, ffmpeg_runs: list[list[str]]
):
    source = canonical_clips[1]  # 1.5 s, made by normalize_clip at FMT
    out = tmp_path / "out.mp4"
    assert mf._film_tracks(mf.ffmpeg_binary(), FMT)  # sampled once per process
    ffmpeg_runs.clear()
    info = mf.normalize_clip(source, out, fmt=FMT, duration=1.5, input_format="mp4")
    assert len(ffmpeg_runs) == 1 and "copy" in ffmpeg_runs[0]  # its MP4 header told
    assert video_packets(out) == video_packets(source)
    assert info == mf.probe(out) == mf.probe(source)


def test_a_copy_is_not_made_of_a_clip_that_only_looks_like_the_film_format(
    canonical_clips: list[Path], tmp_path: Path
):
    source = canonical_clips[1]
    # Same size, rate and codecs, but another length, or another encoder's settings, or asked
    # not to: encoded.
    longer = mf.normalize_clip(source, tmp_path / "longer.mp4", fmt=FMT, duration=2.0)
    assert longer.duration == pytest.approx(2.0)
    assert len(video_packets(tmp_path / "longer.mp4")) == 48
    foreign = tmp_path / "foreign.mp4"
    run_ffmpeg(
        *("-f", "lavfi", "-i", "testsrc2=size=320x180:rate=24:duration=1.5"),
        *("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=1.5"),
        *("-c:v", "libx264", "-preset", "ultrafast", "-profile:v", "high", "-pix_fmt", "yuv420p"),
        *("-c:a", "aac", "-ac", "2", str(foreign)),
    )
    assert mf.probe(foreign).video_codec == "h264"
    mf.normalize_clip(foreign, tmp_path / "from-foreign.mp4", fmt=FMT, duration=1.5)
    assert video_packets(tmp_path / "from-foreign.mp4") != video_packets(foreign)
    mf.normalize_clip(source, tmp_path / "forced.mp4", fmt=FMT, duration=1.5, copy=False)
    assert decoded_frames(tmp_path / "forced.mp4") != decoded_frames(source)


# --------------------------------------------------------------------------- still → clip

TRICKY_CAPTION = 'Mara\'s "last" line: 100% real; 50%{pts} \\ [done], ok?'


def test_still_to_clip_has_exact_duration_and_canonical_format_with_tricky_caption(
    tmp_path: Path,
):
    image = make_test_image(tmp_path / "still.png")
    info = mf.still_to_clip(
        image, tmp_path / "shot.mp4", fmt=FMT, duration=2.0, caption=TRICKY_CAPTION, seed=3
    )
    assert_canonical(info)
    assert info.duration == pytest.approx(2.0, abs=0.05)
    assert max_volume_db(tmp_path / "shot.mp4") < -80


def test_still_to_clip_burns_the_caption_into_the_bottom_of_the_frame(tmp_path: Path):
    if mf._caption_font() is None or not mf.has_filter("drawtext"):
        pytest.skip("no caption font or drawtext filter in this ffmpeg")
    image = tmp_path / "flat.png"
    Image.new("RGB", (320, 180), (40, 140, 60)).save(image)
    plain = mf.still_to_clip(image, tmp_path / "plain.mp4", fmt=FMT, duration=1.0)
    captioned = mf.still_to_clip(
        image, tmp_path / "captioned.mp4", fmt=FMT, duration=1.0, caption=TRICKY_CAPTION
    )
    assert plain.duration == pytest.approx(captioned.duration, abs=0.01)
    a = frame_at(tmp_path / "plain.mp4", 0.5, tmp_path / "a.png")
    b = frame_at(tmp_path / "captioned.mp4", 0.5, tmp_path / "b.png")
    diff = ImageChops.difference(a, b)
    assert max(ImageStat.Stat(diff.crop((0, 120, 320, 180))).mean) > 10
    assert max(ImageStat.Stat(diff.crop((0, 0, 320, 90))).mean) < 2


def test_still_to_clip_moves_the_camera_over_the_still(tmp_path: Path):
    image = make_test_image(tmp_path / "still.png")
    out = tmp_path / "shot.mp4"
    mf.still_to_clip(image, out, fmt=FMT, duration=1.5, seed=0)
    first = frame_at(out, 0.0, tmp_path / "first.png")
    last = frame_at(out, 1.4, tmp_path / "last.png")
    assert max(ImageStat.Stat(ImageChops.difference(first, last)).mean) > 5


# --------------------------------------------------------------------------- stitch


def test_stitch_copies_streams_when_clips_share_a_format(
    canonical_clips: list[Path], tmp_path: Path
):
    out = tmp_path / "film.mp4"
    result = mf.stitch(canonical_clips, out)
    assert result.method == "copy"
    assert_canonical(result.info)
    total = sum(mf.probe(c).duration for c in canonical_clips)
    assert result.info.duration == pytest.approx(total, abs=0.1 * len(canonical_clips))
    # Pixel-identical frames prove nothing was re-encoded (x264 at crf 23 is lossy).
    assert decoded_frames(out) == [f for clip in canonical_clips for f in decoded_frames(clip)]
    # Packets are copied verbatim, except that the concat demuxer's h264_mp4toannexb pass
    # puts SPS/PPS in front of each clip's first keyframe.
    expected = [packet for clip in canonical_clips for packet in video_packets(clip)]
    actual = video_packets(out)
    assert len(actual) == len(expected)
    assert sum(a != e for a, e in zip(actual, expected, strict=True)) <= len(canonical_clips)


def test_a_stitch_of_clips_alike_is_one_ffmpeg_run_that_reports_the_film(
    canonical_clips: list[Path], tmp_path: Path, ffmpeg_runs: list[list[str]]
):
    out = tmp_path / "film.mp4"
    result = mf.stitch(canonical_clips, out, fmt=FMT)
    # Their MP4 headers say the clips are alike: no probe of them, none of the film.
    assert len(ffmpeg_runs) == 1 and "concat" in ffmpeg_runs[0]
    probed = mf.probe(out)
    assert result.method == "copy"
    assert result.info == mf.MediaInfo(
        **{**vars(probed), "duration": pytest.approx(probed.duration, abs=0.005)}
    )


def test_clips_from_another_encoder_are_told_apart_by_their_headers(
    canonical_clips: list[Path], tmp_path: Path, ffmpeg_runs: list[list[str]]
):
    foreign = tmp_path / "foreign.mp4"
    run_ffmpeg(
        *("-f", "lavfi", "-i", "testsrc2=size=320x180:rate=24:duration=1"),
        *("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=1"),
        *("-c:v", "libx264", "-preset", "ultrafast", "-profile:v", "high", "-pix_fmt", "yuv420p"),
        *("-c:a", "aac", "-ac", "2", "-movflags", "+faststart", str(foreign)),
    )
    heads = [mf._mp4_head(clip) for clip in [*canonical_clips, foreign]]
    assert mf._joinable(heads[:-1], FMT)
    assert not mf._joinable(heads, FMT)  # another SPS/PPS: one stream copy would not decode
    assert not mf._joinable(heads[:-1], mf.CanonicalFormat(640, 360, 24))
    assert not mf._joinable(heads[:-1], mf.CanonicalFormat(320, 180, 25))
    assert heads[0].duration == pytest.approx(1.0, abs=0.03)
    raw = tmp_path / "clip.h264"
    run_ffmpeg("-i", str(foreign), "-c:v", "copy", "-an", "-f", "h264", str(raw))
    assert mf._mp4_head(raw) is None  # not an MP4: ffmpeg probes it
    ffmpeg_runs.clear()
    result = mf.stitch([*canonical_clips, foreign], tmp_path / "film.mp4", fmt=FMT)
    assert "concat" not in ffmpeg_runs[0]  # probed, then decided
    assert result.info.duration == pytest.approx(
        mf.probe(tmp_path / "film.mp4").duration, abs=0.005
    )


def test_stitch_force_reencode_really_reencodes(canonical_clips: list[Path], tmp_path: Path):
    out = tmp_path / "film.mp4"
    result = mf.stitch(canonical_clips[:2], out, force_reencode=True)
    assert result.method == "reencode"
    assert_canonical(result.info)
    expected = [frame for clip in canonical_clips[:2] for frame in decoded_frames(clip)]
    actual = decoded_frames(out)
    assert len(actual) == len(expected)
    assert actual != expected


def test_stitch_reencodes_mismatched_clips_to_canonical_format(
    odd_clip: Path, known_clip: Path, canonical_clips: list[Path], tmp_path: Path
):
    clips = [odd_clip, known_clip, canonical_clips[0]]
    result = mf.stitch(clips, tmp_path / "film.mp4", fmt=FMT)
    assert result.method == "reencode"
    assert_canonical(result.info)
    total = sum(mf.probe(c).duration for c in clips)
    assert result.info.duration == pytest.approx(total, abs=0.1 * len(clips))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["film.mp4"]


def test_stitch_defaults_to_first_clip_format_when_reencoding(
    known_clip: Path, odd_clip: Path, tmp_path: Path
):
    result = mf.stitch([known_clip, odd_clip], tmp_path / "film.mp4")
    assert result.method == "reencode"
    assert_canonical(result.info, CanonicalFormat(320, 240, 25))


def test_stitch_reencodes_uniform_clips_that_do_not_match_the_requested_format(
    canonical_clips: list[Path], tmp_path: Path
):
    small = CanonicalFormat(160, 90, 12)
    result = mf.stitch(canonical_clips[:1], tmp_path / "film.mp4", fmt=small)
    assert result.method == "reencode"
    assert_canonical(result.info, small)


def test_stitch_handles_paths_with_quotes_and_spaces(canonical_clips: list[Path], tmp_path: Path):
    weird = tmp_path / "it's a clip.mp4"
    weird.write_bytes(canonical_clips[0].read_bytes())
    result = mf.stitch([weird, canonical_clips[1]], tmp_path / "film.mp4")
    assert result.method == "copy"


def test_stitch_rejects_an_empty_clip_list(tmp_path: Path):
    with pytest.raises(ValueError):
        mf.stitch([], tmp_path / "film.mp4")


# --------------------------------------------------------------------------- poster


@pytest.mark.parametrize(("suffix", "image_format"), [(".jpg", "JPEG"), (".png", "PNG")])
def test_poster_writes_a_real_image_of_the_video_size(
    canonical_clips: list[Path], tmp_path: Path, suffix: str, image_format: str
):
    dst = tmp_path / f"poster{suffix}"
    mf.poster(canonical_clips[0], dst)
    with Image.open(dst) as image:
        assert image.format == image_format
        assert image.size == (320, 180)
        assert max(ImageStat.Stat(image.convert("RGB")).stddev) > 10  # not a blank frame


def test_poster_past_the_end_still_returns_the_last_frame(
    canonical_clips: list[Path], tmp_path: Path
):
    dst = tmp_path / "poster.png"
    mf.poster(canonical_clips[0], dst, at=99)
    assert Image.open(dst).size == (320, 180)


def test_poster_rejects_unknown_image_suffix(canonical_clips: list[Path], tmp_path: Path):
    with pytest.raises(ValueError):
        mf.poster(canonical_clips[0], tmp_path / "poster.gif")


# --------------------------------------------------------------------------- failures


def test_probe_of_corrupt_file_raises_ffmpeg_error_with_stderr(tmp_path: Path):
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(os.urandom(4096))
    with pytest.raises(FFmpegError) as excinfo:
        mf.probe(corrupt)
    assert "Invalid data found" in excinfo.value.stderr_tail
    assert excinfo.value.stderr_tail in str(excinfo.value)
    assert "corrupt.mp4" in str(excinfo.value)
    assert len(excinfo.value.stderr_tail.splitlines()) <= mf.STDERR_TAIL_LINES


def test_normalize_of_corrupt_file_raises_ffmpeg_error_and_writes_nothing(tmp_path: Path):
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(2048))
    with pytest.raises(FFmpegError) as excinfo:
        mf.normalize_clip(corrupt, tmp_path / "out.mp4", fmt=FMT, duration=1.0)
    assert excinfo.value.stderr_tail
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corrupt.mp4"]


def test_slow_render_times_out_with_ffmpeg_error_and_leaves_no_temp_file(tmp_path: Path):
    image = make_test_image(tmp_path / "still.png")
    with pytest.raises(FFmpegError, match="timed out"):
        mf.still_to_clip(image, tmp_path / "shot.mp4", fmt=FMT, duration=3600, timeout=0.5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["still.png"]


# --------------------------------------------------------------------------- sound


def float_samples(path: Path) -> array.array:
    """The samples of a float WAV file (what the mix's stems are)."""
    data = path.read_bytes()
    start = data.index(b"data") + 8
    samples = array.array("f")
    samples.frombytes(data[start : start + (len(data) - start) // 4 * 4])
    return samples


def test_lines_apart_are_laid_end_to_end_as_the_mix_of_delayed_lines_would_place_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    lines = []
    for index, (start, seconds) in enumerate([(0.1, 0.6), (1.3, 0.4), (2.05, 0.7)]):
        wav = tmp_path / f"line-{index}.wav"  # mono 22.05 kHz, as eSpeak NG writes them
        run_ffmpeg(
            *("-f", "lavfi", "-i", f"sine=frequency={300 + 100 * index}:duration={seconds}"),
            *("-ar", "22050", "-ac", "1", "-c:a", "pcm_s16le", str(wav)),
        )
        lines.append(mf.PlacedLine(wav, start))
    assert mf._apart(lines, 3.0)
    assert not mf._apart(lines, 2.5)  # the last line would run past the end
    assert not mf._apart([*lines, mf.PlacedLine(lines[0].path, 0.5)], 3.0)  # overlapping
    laid = mf._dialogue_stem(lines, tmp_path / "laid.wav", 3.0, 60)
    monkeypatch.setattr(mf, "_apart", lambda lines, duration: False)
    mixed = mf._dialogue_stem(lines, tmp_path / "mixed.wav", 3.0, 60)
    a, b = float_samples(tmp_path / "laid.wav"), float_samples(tmp_path / "mixed.wav")
    assert len(a) == len(b) == 3 * 48_000 * 2
    assert max(abs(x - y) for x, y in zip(a, b, strict=True)) < 1e-4
    assert laid.integrated == pytest.approx(mixed.integrated, abs=0.05)


def level_runs(runs: list[list[str]]) -> list[list[str]]:
    """mix_sound's encoded levels: the premix gained (and limited) into the film (AAC), the
    picture copied."""
    return [run for run in runs if "-filter_complex" in run and "0:v" in run]


def level_trials(runs: list[list[str]]) -> list[list[str]]:
    """mix_sound's levels tried on the PCM: the premix gained (and limited) and measured."""
    return [run for run in runs if "-af" in run and "volume=" in run[run.index("-af") + 1]]


def test_a_peak_the_level_let_through_is_limited_again(
    canonical_clips: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    ffmpeg_runs: list[list[str]],
):  # fmt: skip
    line = tmp_path / "line.wav"  # clicks over a quiet tone: peaks far above its loudness
    clicks = "volume='0.05+exp(-200*mod(t,0.5))':eval=frame"
    run_ffmpeg(
        *("-f", "lavfi", "-i", "sine=frequency=330:duration=3", "-af", clicks),
        *("-ar", "22050", "-ac", "1", "-c:a", "pcm_s16le", str(line)),
    )
    picture = tmp_path / "picture.mp4"
    mf.stitch(canonical_clips, picture, fmt=FMT)
    bed = mf.music_bed(tmp_path / "bed.wav", duration=3.5, seed=2)
    monkeypatch.setattr(mf, "TRUE_PEAK_AIM", 3.0)  # the first level aims over the limit
    ffmpeg_runs.clear()
    mixed = mf.mix_sound(
        picture, tmp_path / "film.mp4", lines=[mf.PlacedLine(line, 0.2)], music=bed
    )
    # Tried, measured over the peak, limited lower, tried again: then encoded once.
    trials, levels = level_trials(ffmpeg_runs), level_runs(ffmpeg_runs)
    assert 2 <= len(trials) <= 3 and len(levels) == 1
    assert "alimiter" not in " ".join(trials[0]) and "alimiter" in " ".join(trials[1])
    assert "alimiter" in " ".join(levels[0])
    assert mixed.loudness.true_peak <= mf.TARGET_TRUE_PEAK
    assert mf.loudness(tmp_path / "film.mp4") == mixed.loudness
    assert mixed.loudness.integrated == pytest.approx(mf.TARGET_LUFS, abs=0.5)


def test_what_the_limiter_takes_off_is_made_up_so_the_film_lands_on_the_target(
    canonical_clips: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    ffmpeg_runs: list[list[str]],
):  # fmt: skip
    line = tmp_path / "line.wav"  # a plucked tone: a peak at each onset, then a decay
    pluck = "volume='exp(-12*mod(t,0.25))':eval=frame"
    run_ffmpeg(
        *("-f", "lavfi", "-i", "sine=frequency=330:duration=3", "-af", pluck),
        *("-ar", "22050", "-ac", "1", "-c:a", "pcm_s16le", str(line)),
    )
    picture = tmp_path / "picture.mp4"
    mf.stitch(canonical_clips, picture, fmt=FMT)
    monkeypatch.setattr(mf, "TRUE_PEAK_AIM", -8.0)  # the limiter takes dBs off the peaks
    ffmpeg_runs.clear()
    mixed = mf.mix_sound(picture, tmp_path / "film.mp4", lines=[mf.PlacedLine(line, 0.2)])
    # Tried, measured short of the target, tried louder: then encoded once.
    trials, levels = level_trials(ffmpeg_runs), level_runs(ffmpeg_runs)
    assert "alimiter" in " ".join(trials[0])
    assert 2 <= len(trials) <= 3 and len(levels) == 1
    assert trials[-1][trials[-1].index("-af") + 1].split(",")[1] in " ".join(levels[0])
    film = mf.loudness(tmp_path / "film.mp4")
    assert film == mixed.loudness
    assert film.integrated == pytest.approx(mf.TARGET_LUFS, abs=0.5)
    assert film.true_peak <= mf.TARGET_TRUE_PEAK


@pytest.mark.parametrize("bias", [-0.35, 0.5])
def test_what_the_encoder_moves_a_level_by_is_learnt_and_the_next_encode_lands(
    canonical_clips: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    ffmpeg_runs: list[list[str]], bias: float,
):  # fmt: skip
    """An encoder that writes every level `bias` LU off its PCM trial (as measured): the
    first encode misses the tolerance, the next trials count the bias, the second lands."""
    line = tmp_path / "line.wav"
    run_ffmpeg(
        *("-f", "lavfi", "-i", "sine=frequency=330:duration=3"),
        *("-ar", "22050", "-ac", "1", "-c:a", "pcm_s16le", str(line)),
    )
    picture = tmp_path / "picture.mp4"
    mf.stitch(canonical_clips, picture, fmt=FMT)
    real = mf.loudness

    def biased(src, **kwargs):
        figures = real(src, **kwargs)
        if Path(src) != picture:  # an encoded level, as measured
            return dataclasses.replace(figures, integrated=figures.integrated + bias)
        return figures

    monkeypatch.setattr(mf, "loudness", biased)
    ffmpeg_runs.clear()
    mixed = mf.mix_sound(picture, tmp_path / "film.mp4", lines=[mf.PlacedLine(line, 0.2)])
    assert len(level_runs(ffmpeg_runs)) == 2
    assert abs(mixed.loudness.integrated - mf.TARGET_LUFS) <= mf.LOUDNESS_TOLERANCE
    assert mixed.loudness.true_peak <= mf.TARGET_TRUE_PEAK
    written = real(tmp_path / "film.mp4")  # the file is the take that landed
    assert written.integrated + bias == pytest.approx(mixed.loudness.integrated, abs=0.05)
    assert not list(tmp_path.glob("mix-*"))  # the other take went with the work folder
