"""Benchmark: stitching canonical clips by stream copy vs re-encode vs a plain file copy
(shutil.copyfile and `cp`); given the app's stitch (`app`, from bench/run.py), that against the
bare `ffmpeg -f concat -c copy` of the same files.

    python bench/stitch_bench.py [--clips 24 --seconds 5 --height 720] [--json]

Importable too: ``run(clips, seconds, height) -> dict`` (needs the repo root on sys.path).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

try:
    from media import ffmpeg as mf
except ImportError:  # run as a script: bench/ is on sys.path, the repo root is not
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from media import ffmpeg as mf

FPS = 24


def _timed(action: Callable[[], object], repeat: int = 1) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - start)
    return best


def make_clips(workdir: Path, clips: int, seconds: float, height: int) -> list[Path]:
    """One synthetic source, normalized once, copied to ``clips`` canonical files."""
    width, height = mf.canonical_size("16:9", height)
    fmt = mf.CanonicalFormat(width, height, FPS)
    source = workdir / "source.mp4"
    cmd = [
        *(mf.ffmpeg_binary(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y"),
        *("-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate={FPS}:duration={seconds}"),
        *("-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}"),
        *("-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", str(source)),
    ]
    subprocess.run(cmd, check=True, timeout=600)
    canonical = workdir / "clip-000.mp4"
    mf.normalize_clip(source, canonical, fmt=fmt, duration=seconds)
    paths = [canonical]
    for index in range(1, clips):
        paths.append(workdir / f"clip-{index:03d}.mp4")
        shutil.copyfile(canonical, paths[-1])
    return paths


def _ffmpeg(*args: str) -> None:
    cmd = [mf.ffmpeg_binary(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args]
    subprocess.run(cmd, check=True, timeout=600)


def make_lines(workdir: Path, count: int, seconds: float) -> list[mf.PlacedLine]:
    """A spoken line per clip (eSpeak NG), each at its clip's start."""
    espeak = shutil.which("espeak-ng") or "espeak-ng"
    lines = []
    for index in range(count):
        wav = workdir / f"line-{index:03d}.wav"
        text = f"Shot {index + 1}: we hold on until the morning comes."
        subprocess.run([espeak, "-w", str(wav), text], check=True, timeout=60)
        lines.append(mf.PlacedLine(wav, index * seconds + 0.1))
    return lines


def bare_concat(paths: list[Path], dst: Path, *, faststart: bool = True) -> None:
    """What the app's stream-copy stitch runs, alone: one `ffmpeg -f concat -c copy`."""
    listing = dst.with_suffix(".txt")
    listing.write_text("".join(mf._concat_list_line(p) for p in paths), encoding="utf-8")
    cmd = [mf.ffmpeg_binary(), "-hide_banner", "-nostdin", "-nostats", "-y", "-f", "concat"]
    cmd += ["-safe", "0", "-i", str(listing), "-c", "copy"]
    cmd += ["-movflags", "+faststart"] if faststart else []
    subprocess.run([*cmd, str(dst)], check=True, capture_output=True, timeout=600)


# The app's stitch, when the caller can run it (bench/run.py, with Django): given the clips,
# a function making the cut in a (new) folder, and the files it stitches.
AppStitch = Callable[[list[Path]], tuple[Callable[[Path], None], list[Path]]]


def run(
    clips: int = 24, seconds: float = 5, height: int = 720, app: AppStitch | None = None
) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="stitch-bench-") as tmp:
        workdir = Path(tmp)
        setup_start = time.perf_counter()
        paths = make_clips(workdir, clips, seconds, height)
        setup_s = time.perf_counter() - setup_start
        info = mf.probe(paths[0])
        total_bytes = sum(p.stat().st_size for p in paths)

        blob = workdir / "all-clips.bin"
        with blob.open("wb") as out:
            for path in paths:
                out.write(path.read_bytes())

        results: dict[str, mf.StitchResult] = {}

        def stitch(name: str, force: bool) -> None:
            results[name] = mf.stitch(paths, workdir / f"{name}.mp4", force_reencode=force)

        copy_s = _timed(lambda: stitch("copy", False), repeat=3)
        app_figures: dict[str, float] = {}
        if app is not None:
            cut, files = app(paths)
            app_s, bare_s = float("inf"), float("inf")
            for index in range(5):  # interleaved, so that a busy moment hits both
                bare_s = min(bare_s, _timed(lambda: bare_concat(files, workdir / "bare.mp4")))
                app_s = min(app_s, _timed(lambda i=index: cut(workdir / f"app-{i}")))
            plain_s = _timed(lambda: bare_concat(files, workdir / "plain.mp4", faststart=False))
            app_figures = {"app_s": app_s, "bare_s": bare_s, "bare_plain_s": plain_s}
        reencode_s = _timed(lambda: stitch("reencode", True))
        copyfile_s = _timed(lambda: shutil.copyfile(blob, workdir / "blob-copy.bin"), repeat=3)
        cp = shutil.which("cp") or "cp"
        cp_s = _timed(
            lambda: subprocess.run([cp, str(blob), str(workdir / "blob-cp.bin")], check=True),
            repeat=3,
        )
        # With sound: the same stream copy, then a line per clip and a music bed mixed in,
        # measured and levelled to -14 LUFS (one gain) and muxed with the picture copied.
        lines = make_lines(workdir, clips, seconds)
        bed = mf.music_bed(workdir / "bed.wav", duration=clips * seconds, seed=1)
        mixed: dict[str, mf.MixResult] = {}

        def stitch_with_sound() -> None:
            stitch("copy", False)
            mixed["mix"] = mf.mix_sound(
                workdir / "copy.mp4", workdir / "sound.mp4", lines=lines, music=bed
            )

        sound_s = _timed(stitch_with_sound, repeat=2)
        # Its floor: whatever the mix, the film's sound is encoded once (AAC, the film's length).
        mix_wav = workdir / "mix.wav"
        _ffmpeg("-i", str(workdir / "sound.mp4"), "-vn", "-c:a", "pcm_f32le", str(mix_wav))
        encode = ("-i", str(mix_wav), "-c:a", mf.AUDIO_CODEC, "-b:a", mf.AUDIO_BITRATE)
        aac_s = _timed(lambda: _ffmpeg(*encode, str(workdir / "mix.m4a")), repeat=2)
        assert results["copy"].method == "copy", results["copy"]
        assert results["reencode"].method == "reencode", results["reencode"]

        total_seconds = clips * seconds
        return {
            "binary": mf.ffmpeg_binary(),
            "clips": clips,
            "seconds_per_clip": seconds,
            "size": f"{info.width}x{info.height}@{FPS}",
            "total_media_seconds": total_seconds,
            "total_bytes": total_bytes,
            "setup_s": setup_s,
            "copy_s": copy_s,
            "reencode_s": reencode_s,
            "copyfile_s": copyfile_s,
            "cp_s": cp_s,
            "copy_over_copyfile": copy_s / copyfile_s,
            "copy_over_cp": copy_s / cp_s,
            "reencode_over_cp": reencode_s / cp_s,
            "reencode_over_copy": reencode_s / copy_s,
            "copy_x_realtime": total_seconds / copy_s,
            "reencode_x_realtime": total_seconds / reencode_s,
            "copy_output_duration": results["copy"].info.duration,
            **app_figures,
            "sound_s": sound_s,
            "sound_over_copy": sound_s / copy_s,
            "sound_aac_s": aac_s,
            "sound_floor_over_copy": (copy_s + aac_s) / copy_s,
            "sound_lufs": mixed["mix"].loudness.integrated,
            "sound_true_peak": mixed["mix"].loudness.true_peak,
            "sound_normalization": mixed["mix"].normalization,
            "sound_output_duration": mf.probe(workdir / "sound.mp4").duration,
            "reencode_output_duration": results["reencode"].info.duration,
        }


def print_table(r: dict[str, object]) -> None:
    print(
        f"{r['clips']} clips x {r['seconds_per_clip']} s, {r['size']}, "
        f"{int(r['total_bytes']) / 1e6:.1f} MB total, ffmpeg: {r['binary']}"
    )
    print(f"(setup: generate + normalize one clip, {r['setup_s']:.2f} s)")
    print(f"{'method':<22}{'seconds':>9}{'x realtime':>12}{'vs copyfile':>13}{'output s':>10}")
    rows = [
        ("stitch: stream copy", r["copy_s"], r["copy_x_realtime"], r["copy_output_duration"]),
        (
            "stitch: re-encode",
            r["reencode_s"],
            r["reencode_x_realtime"],
            r["reencode_output_duration"],
        ),
        ("shutil.copyfile", r["copyfile_s"], None, None),
        ("cp (subprocess)", r["cp_s"], None, None),
    ]
    for name, seconds, realtime, duration in rows:
        ratio = float(seconds) / float(r["copyfile_s"])
        realtime_text = f"{realtime:>11.0f}x" if realtime else f"{'':>12}"
        duration_text = f"{duration:>10.2f}" if duration else f"{'':>10}"
        print(f"{name:<22}{seconds:>9.3f}{realtime_text}{ratio:>12.1f}x{duration_text}")
    print(f"re-encode / copy: {r['reencode_over_copy']:.1f}x")


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=24)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--json", action="store_true", help="print the result dict as JSON")
    args = parser.parse_args(argv)
    result = run(args.clips, args.seconds, args.height)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_table(result)
    return result


if __name__ == "__main__":
    main()
