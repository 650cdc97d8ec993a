"""The media disk fills up mid-step: a 16 MB tmpfs mounted as MEDIA_ROOT is filled to the last
block while the film is being stitched. The step fails saying so, nothing half-written becomes
current, and a retry once space is freed completes the film."""

import errno
import os
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from media import ffmpeg
from projects.models import Take
from tests.faults.test_database import OFFLINE
from tests.faults.test_faults import (
    Watchdog,
    assert_no_duplicates,
    new_project,
    run_to_the_end,
    slow_ffmpeg,
)
from tests.pipeline import Workers, subprocess_env

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.faults]


@pytest.fixture
def small_disk(settings, tmp_path):
    """A 16 MB tmpfs as MEDIA_ROOT (mounting needs root with CAP_SYS_ADMIN, as in CI)."""
    disk = tmp_path / "media-disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m,mode=0755", "tmpfs", str(disk)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs as the media disk: {mounted.stderr.strip()}")
    settings.MEDIA_ROOT = disk
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {**settings.STORAGES["default"], "OPTIONS": {"location": str(disk)}},
    }
    try:
        yield disk
    finally:
        subprocess.run(["umount", "--lazy", str(disk)], check=False)


def fill(disk: Path) -> Path:
    """Write a file until the disk has no block left; the file, to free the space again."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        for size in (1 << 20, 4096, 1):
            block = b"\0" * size
            while True:
                try:
                    os.write(fd, block)
                except OSError as error:
                    assert error.errno == errno.ENOSPC
                    break
    finally:
        os.close(fd)
    return filler


def stored(disk: Path) -> list[Path]:
    """Every media file on the disk (the filler aside)."""
    return [p for p in disk.rglob("*") if p.is_file() and p.name != "filler"]


def assert_whole(path: Path) -> None:
    """A readable image, or media ffmpeg can read to a duration (a truncated MP4 has no moov
    atom, a truncated WAV no data): nothing half-written."""
    if path.suffix in {".png", ".jpg"}:
        with Image.open(path) as image:
            image.verify()
    else:
        assert ffmpeg.probe(path).duration > 0, path


def test_a_full_media_disk_fails_the_step_and_a_retry_after_freeing_space_completes(
    api, user, settings, small_disk, tmp_path
):
    for name, value in OFFLINE.items():
        setattr(settings, name, value)
    project = new_project(user)
    filled: dict[str, Path] = {}

    def fill_while_stitching() -> None:
        if not filled and project.jobs.filter(type="video-stitching", status="running").exists():
            filled["filler"] = fill(small_disk)

    # ffmpeg takes 0.4 s longer per run: the disk fills while the stitch is being made
    env = subprocess_env(settings, **OFFLINE, FFMPEG_BINARY=slow_ffmpeg(tmp_path))
    with Workers(env), Watchdog(env):
        project = run_to_the_end(project, during=fill_while_stitching)
        assert filled, "the stitch was not caught running"
        assert project.status == "failed"
        failed = project.jobs.get(status="failed")
        assert failed.type == "video-stitching"
        assert "No space left on device" in failed.error
        # Nothing of the failed cut is current: no film, no poster, no film take; and no file
        # on the disk is truncated (the cut being written when it filled is not left behind).
        assert not project.final_video and not project.final_poster
        assert not Take.objects.filter(project=project, kind=Take.Kind.FILM).exists()
        for path in stored(small_disk):
            assert_whole(path)

        filled["filler"].unlink()
        assert api.post(f"/api/jobs/{failed.pk}/retry").status_code == 202
        project = run_to_the_end(project)
    assert project.status == "complete"
    assert_no_duplicates(project)
    for path in stored(small_disk):
        assert_whole(path)
    film = ffmpeg.probe(small_disk / project.final_video)
    assert abs(film.duration - 4 * 2) <= 0.8
