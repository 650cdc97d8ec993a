"""Exportable films of any size without running the pipeline, and the export job run in a
process of its own with its time and peak RSS measured. The export tests and bench 8 share it.

The rows are the ones the pipeline leaves (scenes, frames, clip takes that are current, a film
take); every clip file is a hard link of one real H.264 clip, and the film is those clips
concatenated by ffmpeg (stream copy), so its length is the sum of theirs."""

import json
import os
import subprocess
import sys
from pathlib import Path

from django.conf import settings
from django.core.files.storage import default_storage

from filmstudio.support import BASE_DIR
from generation import services
from generation.models import GenerationJob
from media import ffmpeg
from media.storage import media_name
from projects.models import Frame, Project, Scene, Take, Video


def noise_clip(path: Path, *, seconds: int, fps: int, bitrate: str = "500k") -> Path:
    """A real clip in the film's format whose picture is noise: it does not compress, so the
    file is as big as its bitrate says (what an export has to carry)."""
    width, height = ffmpeg.canonical_size("16:9", settings.MEDIA_BASE_HEIGHT)
    command = [
        *(ffmpeg.ffmpeg_binary(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y"),
        *("-f", "lavfi", "-i", f"nullsrc=s={width}x{height}:r={fps}:d={seconds}"),
        *("-f", "lavfi", "-i", f"anullsrc=r=48000:cl=stereo:d={seconds}"),
        *("-vf", "geq=random(1)*255:128:128", "-shortest"),
        *("-c:v", "libx264", "-preset", "ultrafast", "-b:v", bitrate, "-pix_fmt", "yuv420p"),
        *("-c:a", "aac", "-t", str(seconds), str(path)),
    ]
    subprocess.run(command, check=True, timeout=120)
    return path


def _link(source: Path, name: str) -> str:
    target = Path(default_storage.path(name))
    target.parent.mkdir(parents=True, exist_ok=True)
    os.link(source, target)
    return name


def _concatenate(clips: list[Path], film: Path) -> None:
    """The clips one after the other by stream copy (what the stitch does once it has probed
    each clip, which for hundreds of identical clips is most of its time)."""
    listing = film.with_suffix(".txt")
    listing.parent.mkdir(parents=True, exist_ok=True)
    listing.write_text("".join(f"file '{clip}'\n" for clip in clips))
    command = [
        *(ffmpeg.ffmpeg_binary(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y"),
        *("-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy", str(film)),
    ]
    subprocess.run(command, check=True, timeout=300)
    listing.unlink()


def exportable_project(owner, *, scenes: int, frames: int, clip: Path, title: str) -> Project:
    """A complete film of `scenes` x `frames` shots, each shot `clip`, in bulk."""
    seconds = ffmpeg.probe(clip).duration
    project = Project.objects.create(
        owner=owner,
        title=title,
        num_scenes=scenes,
        frames_per_scene=frames,
        clip_seconds=round(seconds),
        status=Project.Status.COMPLETE,
        progress=100,
    )
    rows = Scene.objects.bulk_create(
        Scene(project=project, order=s, title=f"Scene {s}: the storm", status="ready")
        for s in range(1, scenes + 1)
    )
    shots = Frame.objects.bulk_create(
        Frame(
            scene=scene,
            order=f,
            prompt=f"Shot {f} of scene {scene.order}: the keeper climbs the stairs.",
            dialogue=f"Mara: Line {f} of scene {scene.order}." if f % 2 else "",
            duration=seconds,
            status="ready",
        )
        for scene in rows
        for f in range(1, frames + 1)
    )
    takes = Take.objects.bulk_create(
        Take(
            project=project,
            kind=Take.Kind.CLIP,
            frame=frame,
            file=_link(clip, media_name(project.pk, "videos", f"clip-{frame.pk}", ".mp4")),
            duration=seconds,
            provider="local",
        )
        for frame in shots
    )
    Video.objects.bulk_create(
        Video(frame=take.frame, status="ready", file=take.file, duration=seconds, take=take)
        for take in takes
    )
    name = media_name(project.pk, "final", "film", ".mp4")
    film_path = Path(default_storage.path(name))
    _concatenate([Path(default_storage.path(t.file)) for t in takes], film_path)
    film = Take.objects.create(
        project=project,
        kind=Take.Kind.FILM,
        file=name,
        duration=round(ffmpeg.probe(film_path).duration, 3),
        provider="ffmpeg",
        model="copy",
    )
    project.film_take, project.final_video, project.final_duration = film, name, film.duration
    project.save(update_fields=["film_take", "final_video", "final_duration"])
    return project


def media_bytes(project: Project) -> int:
    """What the zip carries: every current clip and the film."""
    names = [
        project.final_video,
        *Video.objects.filter(frame__scene__project=project).values_list("file", flat=True),
    ]
    return sum(default_storage.size(name) for name in names)


_MEASURE = """
import json, sys, time
from pathlib import Path
import django
django.setup()
from generation.jobtypes import load_job_types
from generation.tasks import run_job
load_job_types()

def status(field):
    lines = Path("/proc/self/status").read_text().splitlines()
    return int(next(x for x in lines if x.startswith(field)).split()[1]) / 1024

Path("/proc/self/clear_refs").write_text("5")  # the peak (VmHWM) from here on
ready = status("VmRSS:")
start = time.monotonic()
run_job(int(sys.argv[1]))
seconds = time.monotonic() - start
print(json.dumps({"seconds": seconds, "ready_mib": ready, "peak_mib": status("VmHWM:")}))
"""


def measured_export(project: Project, env: dict[str, str]) -> tuple[GenerationJob, dict]:
    """Start an export of `project` (the service, as the API does) and run it in a fresh
    process: {seconds, ready_mib (its RSS before the job, Django and every step imported),
    peak_mib (its peak RSS while the job ran: Linux's VmHWM, reset just before)}. Rows must be
    committed for that process to see."""
    job = services.start_export(project=project)
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(job.pk)],
        env=env,
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if done.returncode:
        raise AssertionError(f"the export process failed:\n{done.stderr[-4000:]}")
    job.refresh_from_db()
    return job, json.loads(done.stdout.strip().splitlines()[-1])
