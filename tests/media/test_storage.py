"""delete_project_files and the sweep_media command on local storage."""

import os
import time
from io import StringIO

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command

from media.storage import delete_project_files, media_name, stored_project_ids
from projects.models import Frame, Project, Take
from tests.factories import (
    CharacterFactory,
    FrameFactory,
    ProjectFactory,
    SceneFactory,
    VideoFactory,
)

pytestmark = pytest.mark.django_db


def store(project_id: int, media_type: str = "frames", *, age: float = 7200) -> str:
    """A stored file last modified `age` seconds ago."""
    name = default_storage.save(media_name(project_id, media_type, "x", ".png"), ContentFile(b"x"))
    then = time.time() - age
    os.utime(default_storage.path(name), (then, then))
    return name


def sweep(*args: str) -> list[str]:
    out = StringIO()
    call_command("sweep_media", *args, stdout=out)
    return out.getvalue().splitlines()


def test_delete_project_files_removes_only_that_projects_files(media_root):
    doomed = [store(1, media_type) for media_type in ("characters", "frames", "videos", "final")]
    kept = store(2)
    assert delete_project_files(1) == 4
    assert not any(default_storage.exists(name) for name in doomed)
    assert default_storage.exists(kept)


def test_delete_project_files_of_a_project_without_files_deletes_nothing(media_root):
    assert delete_project_files(99) == 0


def test_stored_project_ids_lists_only_project_folders(media_root):
    store(3)
    store(12)
    default_storage.save("notes/readme.txt", ContentFile(b"x"))
    default_storage.save("012/frames/x.png", ContentFile(b"x"))
    assert stored_project_ids() == [3, 12]


def test_stored_project_ids_of_a_missing_media_root_is_empty(media_root):
    assert stored_project_ids() == []


@pytest.fixture
def referenced(media_root) -> tuple[Project, list[str]]:
    """A project whose every kind of file is referenced by a row."""
    project = ProjectFactory()
    character = CharacterFactory(project=project, image=store(project.pk, "characters"))
    frame = FrameFactory(scene=SceneFactory(project=project), image=store(project.pk, "frames"))
    video = VideoFactory(frame=frame, file=store(project.pk, "videos"))
    project.final_video = store(project.pk, "final")
    project.final_poster = store(project.pk, "final")
    project.save(update_fields=["final_video", "final_poster"])
    names = [character.image, frame.image, video.file, project.final_video, project.final_poster]
    return project, names


def test_sweep_deletes_old_orphans_and_keeps_referenced_files(referenced):
    project, kept = referenced
    unreferenced = store(project.pk, "frames")
    of_deleted_project = store(project.pk + 1000, "videos")
    lines = sweep()
    assert sorted(lines[:-1]) == sorted([unreferenced, of_deleted_project])
    assert lines[-1] == "Deleted 2 unreferenced media files."
    assert not default_storage.exists(unreferenced)
    assert not default_storage.exists(of_deleted_project)
    assert all(default_storage.exists(name) for name in kept)


def test_sweep_deletes_files_referenced_only_by_a_deleted_project(referenced):
    project, names = referenced
    Project.objects.filter(pk=project.pk).delete()
    assert sweep()[-1] == "Deleted 5 unreferenced media files."
    assert not any(default_storage.exists(name) for name in names)


def test_sweep_keeps_young_orphans_that_may_be_in_flight(referenced):
    project, _ = referenced
    young = store(project.pk, "frames", age=60)
    assert sweep() == ["Deleted 0 unreferenced media files."]
    assert default_storage.exists(young)
    assert sweep("--min-age", "30") == [young, "Deleted 1 unreferenced media files."]


def test_sweep_dry_run_lists_and_deletes_nothing(referenced):
    project, _ = referenced
    orphan = store(project.pk, "frames")
    assert sweep("--dry-run") == [orphan, "Would delete 1 unreferenced media files."]
    assert default_storage.exists(orphan)


def test_sweep_leaves_files_outside_the_naming_scheme_alone(media_root):
    stray = [
        default_storage.save("notes/readme.txt", ContentFile(b"x")),
        default_storage.save("7/scratch/tmp.png", ContentFile(b"x")),
        default_storage.save("top.txt", ContentFile(b"x")),
    ]
    for name in stray:
        os.utime(default_storage.path(name), (0, 0))
    assert sweep("--min-age", "0") == ["Deleted 0 unreferenced media files."]
    assert all(default_storage.exists(name) for name in stray)


def test_sweep_with_an_empty_media_root_deletes_nothing(media_root):
    assert sweep() == ["Deleted 0 unreferenced media files."]


def test_sweep_rejects_a_negative_min_age(media_root):
    with pytest.raises(CommandError):
        sweep("--min-age", "-1")


def test_sweep_keeps_every_take_the_music_and_a_live_projects_export(referenced):
    project, kept = referenced
    frame = Frame.objects.get(scene__project=project)
    older_clip = Take.objects.create(
        project=project, kind="clip", frame=frame, file=store(project.pk, "videos")
    )
    line = Take.objects.create(
        project=project, kind="line", frame=frame, file=store(project.pk, "lines")
    )
    project.music_file = store(project.pk, "music")
    project.save(update_fields=["music_file"])
    export = store(project.pk, "exports")
    gone = store(project.pk + 1000, "exports")  # of a project that no longer exists
    assert sweep() == [gone, "Deleted 1 unreferenced media files."]
    for name in [*kept, older_clip.file, line.file, project.music_file, export]:
        assert default_storage.exists(name), name
