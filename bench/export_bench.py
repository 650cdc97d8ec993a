"""Bench 8: the export job (the hand-off zip) on a 10x5 and a 30x12 film: its time against
reading the same media once, and its peak RSS against the same process before the job.

The films are built through the models (tests/exports.py): every clip a hard link of one real
2 s H.264 clip whose picture is noise (it does not compress), the film those clips concatenated.
Each export runs the real job (`generation.tasks.run_job`) in a fresh process."""

# The tables are for people: the multiplication sign is meant.
# ruff: noqa: RUF001

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from django.conf import settings
from django.core.files.storage import default_storage

from bench.harness import BenchError, Context, Result, Row, bench_user
from generation.models import GenerationJob
from media.storage import read_chunks
from projects.models import Project, Video
from tests.exports import exportable_project, measured_export, noise_clip

SHAPES = (("8a", "8b", 10, 5), ("8c", "8d", 30, 12))
MIB = 1 << 20


def _copy_all(project: Project, target: Path) -> tuple[float, int]:
    """Seconds to copy every file the zip carries into one file, through the storage: the
    floor of any archive of them."""
    clips = Video.objects.filter(frame__scene__project=project).values_list("file", flat=True)
    names = [project.final_video, *clips]
    start, total = time.perf_counter(), 0
    with target.open("wb") as out:
        for name in names:
            for chunk in read_chunks(name):
                total += out.write(chunk)
    seconds = time.perf_counter() - start
    target.unlink()
    return seconds, total


def run(ctx: Context) -> Result:
    user = bench_user("export-bench")
    rows, notes, data = [], [], {}
    with tempfile.TemporaryDirectory(prefix="export-bench-") as tmp:
        clip = noise_clip(Path(tmp) / "clip.mp4", seconds=2, fps=settings.MEDIA_FPS)
        for time_id, rss_id, scenes, frames in SHAPES:
            shape = f"{scenes}×{frames}"
            ctx.log(f"export: building a {shape} film")
            project = exportable_project(
                user, scenes=scenes, frames=frames, clip=clip, title=f"Export bench {shape}"
            )
            copy_s, carried = _copy_all(project, Path(tmp) / "copy.bin")
            ctx.log(f"export: {shape}, {carried / MIB:.0f} MiB of media")
            job, figures = measured_export(project, ctx.env)
            if job.status != GenerationJob.Status.SUCCEEDED:
                raise BenchError(f"the {shape} export {job.status}: {job.error}")
            zipped = job.result["size"]
            rows += [
                Row(
                    time_id,
                    f"Export job (hand-off zip), {shape} film: time",
                    f"{figures['seconds']:.2f} s",
                    f"copying the same {carried / MIB:.0f} MiB into one file {copy_s:.2f} s",
                    figures["seconds"] / copy_s if copy_s else None,
                ),
                Row(
                    rss_id,
                    f"Export job, {shape} film: peak RSS",
                    f"{figures['peak_mib']:.0f} MiB",
                    f"the same process before the job {figures['ready_mib']:.0f} MiB",
                    figures["peak_mib"] / figures["ready_mib"],
                ),
            ]
            data[shape] = {**figures, "media_bytes": carried, "zip_bytes": zipped, "copy_s": copy_s}
            default_storage.delete(job.result["file"])
    notes.append(
        "Bench 8: the export job run by `generation.tasks.run_job` in a fresh process "
        "(Django set up, every step imported); peak RSS is Linux's VmHWM, reset just before the "
        "job. Clips are 2 s noise at "
        f"{settings.MEDIA_BASE_HEIGHT}p {settings.MEDIA_FPS} fps, hard links of one file (page "
        "cache warm). "
        + "; ".join(
            f"{shape}: {d['media_bytes'] / MIB:.0f} MiB of media, "
            f"zip {d['zip_bytes'] / MIB:.0f} MiB"
            for shape, d in data.items()
        )
        + "."
    )
    return Result(rows, notes, data)
