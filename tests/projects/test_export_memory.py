"""The export job in bounded memory: a 30x12 film (360 real clips and the film, hundreds of MB)
exported by a process of its own whose peak RSS is measured (issue 14)."""

import zipfile

import pytest
from django.core.files.storage import default_storage

from generation.models import GenerationJob
from tests.exports import exportable_project, measured_export, media_bytes, noise_clip
from tests.pipeline import subprocess_env

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
MIB = 1 << 20


def test_a_30x12_film_exports_in_bounded_memory(user, settings, tmp_path, capsys):
    clip = noise_clip(tmp_path / "clip.mp4", seconds=2, fps=settings.MEDIA_FPS)
    project = exportable_project(user, scenes=30, frames=12, clip=clip, title="Thirty by twelve")
    carried = media_bytes(project)
    assert carried > 100 * MIB

    job, figures = measured_export(project, subprocess_env(settings))

    assert job.status == GenerationJob.Status.SUCCEEDED, job.error
    assert job.result["clips"] == 360 and job.result["size"] > carried
    grown = figures["peak_mib"] - figures["ready_mib"]
    with capsys.disabled():
        print(
            f"\nexport 30x12: {carried / MIB:.0f} MiB of media, zip {job.result['size'] / MIB:.0f}"
            f" MiB in {figures['seconds']:.1f} s; peak RSS {figures['peak_mib']:.0f} MiB, "
            f"{figures['ready_mib']:.0f} MiB before the job (+{grown:.0f} MiB)"
        )
    # Streamed: what the job adds is a fraction of what it carries, whatever the film's size.
    assert grown < 64
    with default_storage.open(job.result["file"], "rb") as handle, zipfile.ZipFile(handle) as zf:
        names = zf.namelist()
        assert len([n for n in names if n.startswith("clips/")]) == 360
        assert zf.getinfo("film.mp4").file_size == default_storage.size(project.final_video)
