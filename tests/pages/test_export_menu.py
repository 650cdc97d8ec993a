"""The Export menu in a real browser (uvicorn and an RQ worker underneath): the three timelines
download and read back with OpenTimelineIO, the hand-off zip is built by a job whose progress
shows, then downloads with the media its timelines name (issue 14)."""

import re
import zipfile

import opentimelineio as otio
import pytest
import srt

from generation.models import GenerationJob
from projects.models import Frame, Project
from tests.pages.conftest import finished_film, login, screenshot, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """The server checks passwords with the default hashers, so users are hashed with one."""


@pytest.fixture
def film(stack) -> Project:
    return finished_film(stack, username="ines", title="Salt Wind")


def frames_of(project: Project) -> list[Frame]:
    return list(
        Frame.objects.filter(scene__project=project).select_related("video").order_by("order")
    )


def download(page, selector: str, folder):
    with page.expect_download() as info:
        page.click(selector)
    target = folder / info.value.suggested_filename
    info.value.save_as(target)
    return target


def test_the_export_menu_downloads_each_timeline_and_the_zip(page, stack, film, tmp_path):
    first, second = frames_of(film)
    login(page, "ines", next_url=f"/studio/?project={film.pk}")
    page.wait_for_selector("#export-menu[data-ready='true']:not([hidden])")
    page.click("#export-menu summary")
    assert page.locator("#export-timelines button").count() == 5

    saved = download(page, "#export-timelines [data-format='otio']", tmp_path)
    assert saved.name == "salt-wind.otio"
    timeline = otio.adapters.read_from_file(str(saved))
    [video] = [t for t in timeline.tracks if t.kind == otio.schema.TrackKind.Video]
    clips = list(video.find_clips())
    assert [c.metadata["filmstudio"]["take_id"] for c in clips] == [
        first.video.take_id,
        second.video.take_id,
    ]
    assert "/blob/" in clips[0].media_reference.target_url
    xml = download(page, "#export-timelines [data-format='fcpxml']", tmp_path)
    assert xml.name == "salt-wind.fcpxml" and "<fcpxml" in xml.read_text()
    edl = download(page, "#export-timelines [data-format='edl']", tmp_path).read_text()
    assert len(re.findall(r"^\d{3} ", edl, re.MULTILINE)) == 2
    page.wait_for_selector("#notice:text('Timeline downloaded')")
    subtitles = download(page, "#export-timelines [data-format='srt']", tmp_path)
    assert subtitles.name == "salt-wind.srt"
    assert len(list(srt.parse(subtitles.read_text()))) == 2  # both shots have a line
    vtt = download(page, "#export-timelines [data-format='vtt']", tmp_path).read_text()
    assert vtt.startswith("WEBVTT")

    page.click("#export-bundle")
    page.wait_for_selector("#export-state span:text('Export #')")
    screenshot(page, "40-studio-export-running")
    job = wait_until(lambda: film.jobs.filter(type=GenerationJob.Type.EXPORT).first())
    page.wait_for_selector("#export-state .badge.s-succeeded >> text=succeeded", timeout=30_000)
    page.wait_for_selector("#notice:text('is ready')")
    screenshot(page, "41-studio-export-ready")
    bundle = download(page, "#export-download", tmp_path)
    job.refresh_from_db()
    assert bundle.stat().st_size == job.result["size"]
    with zipfile.ZipFile(bundle) as zf:
        names = set(zf.namelist())
        inside = otio.adapters.read_from_string(zf.read("timeline.otio").decode(), "otio_json")
        paths = [c.media_reference.target_url for c in inside.find_clips()]
    assert paths and all(p in names for p in paths)
    assert {"film.mp4", "subtitles.srt", "subtitles.vtt", "timeline.edl"} <= names
    assert page.console_errors == []


def test_a_refused_timeline_is_a_notice_not_a_page(page, stack, film):
    login(page, "ines", next_url=f"/studio/?project={film.pk}")
    page.wait_for_selector("#export-menu[data-ready='true']:not([hidden])")
    page.click("#export-menu summary")
    page.route(
        "**/api/projects/*/export?format=edl",
        lambda route: route.fulfill(status=409, json={"detail": "No finished cut to export: x."}),
    )
    page.click("#export-timelines [data-format='edl']")
    page.wait_for_selector("#notice.error:text('No finished cut to export')")
    assert page.url.endswith(f"/studio/?project={film.pk}")
