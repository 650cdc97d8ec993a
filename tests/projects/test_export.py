"""Hand-off to an editor (issue 14): every timeline read back with OpenTimelineIO against the
database, the FCP X XML's assets and clips, the EDL's events and timecodes, the zip's relative
paths, and bad input. A real offline film: real RQ jobs, PostgreSQL and ffmpeg."""

import io
import re
import subprocess
import xml.etree.ElementTree as ET
import zipfile
from fractions import Fraction
from pathlib import Path
from urllib.parse import urlsplit

import opentimelineio as otio
import pytest
import srt
import webvtt
from django.core.files.storage import default_storage
from opentimelineio.opentime import RationalTime, from_timecode

from generation.models import GenerationJob
from media import ffmpeg
from projects.models import Frame, Project, Take
from tests.factories import FrameFactory, ProjectFactory, SceneFactory, VideoFactory
from tests.pipeline import drain

pytestmark = pytest.mark.django_db(transaction=True)
Job = GenerationJob
FPS = 12  # tests/conftest.py: MEDIA_FPS (not one of the FCP X adapter's broadcast rates)
EDL_RATE = 24  # SMPTE timecode has no 12 fps: the EDL counts at 24, two per frame
LEAD_IN = 0.1  # generation.steps.stitch.LINE_LEAD_IN: a line starts this long into its shot


@pytest.fixture
def film(api, user):
    """A finished offline film: 2 scenes of 3 shots, 2 s each, one spoken line per shot."""
    project = ProjectFactory(
        owner=user, title="The Keeper's Storm", num_scenes=2, frames_per_scene=3, clip_seconds=2
    )
    response = api.post(
        "/api/jobs/character-generation", {"project_id": project.pk, "count": 2}, format="json"
    )
    assert response.status_code == 202
    drain()
    for character in project.characters.all():
        assert api.post(f"/api/characters/{character.pk}/approve").status_code == 200
    drain()
    project.refresh_from_db()
    assert project.status == Project.Status.COMPLETE
    return project


def shots(project) -> list[Frame]:
    return list(
        Frame.objects.filter(scene__project=project)
        .select_related("scene", "video__take", "line_take")
        .order_by("scene__order", "order")
    )


def film_frames(project) -> int:
    project.refresh_from_db()
    return round(Take.objects.get(pk=project.film_take_id).duration * FPS)


def export(api, project, fmt: str):
    response = api.get(f"/api/projects/{project.pk}/export?format={fmt}")
    assert response.status_code == 200, response.content
    return response


def read_back(text: str, fmt: str) -> otio.schema.Timeline:
    adapter = {"otio": "otio_json", "fcpxml": "fcpx_xml", "edl": "cmx_3600"}[fmt]
    options = {"rate": EDL_RATE} if fmt == "edl" else {}
    return otio.adapters.read_from_string(text, adapter, **options)


def video_clips(timeline: otio.schema.Timeline) -> list[otio.schema.Clip]:
    [video] = [t for t in timeline.tracks if t.kind == otio.schema.TrackKind.Video]
    return list(video.find_clips())


def blob_bytes(api, url: str) -> bytes:
    parts = urlsplit(url)
    response = api.get(f"{parts.path}?{parts.query}")
    assert response.status_code == 200, url
    return b"".join(response.streaming_content)


def stored(name: str) -> bytes:
    return Path(default_storage.path(name)).read_bytes()


# --- the timelines ---------------------------------------------------------------------------


def test_the_otio_timeline_is_the_current_takes_in_film_order_at_the_films_exact_length(api, film):
    response = export(api, film, "otio")
    assert response["Content-Type"] == "application/json; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="the-keepers-storm.otio"'
    timeline = read_back(response.content.decode(), "otio")
    frames = shots(film)

    clips = video_clips(timeline)
    assert len(clips) == len(frames) == 6
    assert [c.name for c in clips] == [f"Scene {f.scene.order} shot {f.order}" for f in frames]
    for clip, frame in zip(clips, frames, strict=True):
        meta = clip.metadata["filmstudio"]
        assert (meta["frame_id"], meta["take_id"]) == (frame.pk, frame.video.take_id)
        assert meta["prompt"] == frame.prompt and meta["prompt"]
        assert clip.duration() == RationalTime(round(frame.video.take.duration * FPS), FPS)
        assert clip.duration().value == 2 * FPS
    # Rational time: the whole is the sum of whole frames, equal to the stored film's length.
    assert timeline.duration() == RationalTime(film_frames(film), FPS)
    assert timeline.duration().value == 6 * 2 * FPS and timeline.duration().rate == FPS

    audio = [t for t in timeline.tracks if t.kind == otio.schema.TrackKind.Audio]
    assert [t.name for t in audio] == ["Dialogue", "Music"]  # sound fills them; they are there
    markers = [(c.name, m.name) for c in clips for m in c.markers]
    scenes = {f.scene.order: f.scene.title for f in frames}
    assert markers == [("Scene 1 shot 1", scenes[1]), ("Scene 2 shot 1", scenes[2])]
    assert all(title for title in scenes.values())

    # Media are signed absolute URLs that serve exactly the current take's file.
    first = clips[0].media_reference.target_url
    assert first.startswith("http://testserver/blob/") and "sig=" in first
    assert blob_bytes(api, first) == stored(frames[0].video.take.file)


def fcpx_seconds(value: str) -> Fraction:
    number = value.removesuffix("s")
    return Fraction(number) if number else Fraction(0)


def test_the_fcpxml_has_an_asset_per_clip_and_a_spine_of_clips_in_order(api, film):
    response = export(api, film, "fcpxml")
    assert response["Content-Type"] == "application/xml; charset=utf-8"
    text = response.content.decode()
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE fcpxml>')
    # The adapter ships no DTD: the structure is checked element by element.
    root = ET.fromstring(text)
    assert root.tag == "fcpxml" and root.get("version") == "1.8"
    [fmt] = root.findall("./resources/format")
    assert fmt.get("frameDuration") == f"1/{FPS}s"
    assert (fmt.get("width"), fmt.get("height")) == ("320", "180")
    frames = shots(film)
    assets = [a for a in root.findall("./resources/asset") if a.get("hasVideo") == "1"]
    assert len(assets) == len(frames)
    by_id = {a.get("id"): a for a in assets}
    for asset, frame in zip(assets, frames, strict=True):
        assert asset.get("format") == fmt.get("id")
        assert (asset.get("hasVideo"), asset.get("hasAudio")) == ("1", "1")
        assert asset.get("src").startswith("http://testserver/blob/")
        assert fcpx_seconds(asset.get("duration")) == Fraction(
            round(frame.video.take.duration * FPS), FPS
        )

    spine = root.findall("./project/sequence/spine/clip")
    assert [c.get("name") for c in spine] == [
        f"Scene {f.scene.order} shot {f.order}" for f in frames
    ]
    offset = Fraction(0)
    for clip, frame in zip(spine, frames, strict=True):
        assert fcpx_seconds(clip.get("offset")) == offset  # each clip starts where the last ended
        offset += fcpx_seconds(clip.get("duration"))
        video = clip.find("video")
        assert by_id[video.get("ref")].get("src") == blob_src(api, film, frame)
    sequence = root.find("./project/sequence")
    assert offset == fcpx_seconds(sequence.get("duration")) == Fraction(film_frames(film), FPS)
    assert [m.get("value") for m in root.iter("marker")] == [
        frames[0].scene.title,
        frames[3].scene.title,
    ]
    notes = {c.get("name"): c.findtext("note") for c in root.findall("./asset-clip")}
    md = {
        c.get("name"): {m.get("key"): m.get("value") for m in c.iter("md")}
        for c in root.findall("./asset-clip")
    }
    for frame in frames:
        name = f"Scene {frame.scene.order} shot {frame.order}"
        assert notes[name] == frame.prompt
        assert md[name] == {
            "com.filmstudio.frame-id": str(frame.pk),
            "com.filmstudio.take-id": str(frame.video.take_id),
        }

    timeline = read_back(text, "fcpxml")  # and OpenTimelineIO reads it back the same
    clips = video_clips(timeline)
    assert [c.name for c in clips] == [c.get("name") for c in spine]
    assert timeline.duration() == RationalTime(film_frames(film), FPS)


def blob_src(api, project, frame) -> str:
    """The signed URL the timeline gives a frame's current clip (what the OTIO export says)."""
    text = export(api, project, "otio").content.decode()
    for clip in video_clips(read_back(text, "otio")):
        if clip.metadata["filmstudio"]["frame_id"] == frame.pk:
            return clip.media_reference.target_url
    raise AssertionError(f"frame {frame.pk} is not on the timeline")


EVENT = re.compile(r"^(\d{3})\s+(\S+)\s+V\s+C\s+(\S+) (\S+) (\S+) (\S+)$", re.MULTILINE)


def test_the_edl_has_one_event_per_clip_with_timecodes_that_add_up(api, film):
    response = export(api, film, "edl")
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    text = response.content.decode()
    assert text.startswith("TITLE: The Keeper's Storm\n")
    frames = shots(film)
    events = EVENT.findall(text)
    assert [int(e[0]) for e in events] == list(range(1, len(frames) + 1))
    record = 0
    for (_, reel, src_in, src_out, rec_in, rec_out), frame in zip(events, frames, strict=True):
        assert reel == f"S{frame.scene.order:02d}F{frame.order:02d}"
        length = round(frame.video.take.duration * FPS)
        assert from_timecode(src_in, EDL_RATE) == RationalTime(0, FPS)
        assert from_timecode(src_out, EDL_RATE) == RationalTime(length, FPS)
        assert from_timecode(rec_in, EDL_RATE) == RationalTime(record, FPS)  # no gap, no overlap
        record += length
        assert from_timecode(rec_out, EDL_RATE) == RationalTime(record, FPS)
    assert record == film_frames(film)
    for frame in frames:
        assert f"* FRAME ID: {frame.pk}\n* TAKE ID: {frame.video.take_id}" in text
    assert text.count("* LOC: ") == 2
    assert f"BLUE    {frames[0].scene.title.upper()}" in text

    timeline = read_back(text, "edl")
    clips = video_clips(timeline)
    assert [c.name for c in clips] == [f"Scene {f.scene.order} shot {f.order}" for f in frames]
    assert timeline.duration() == RationalTime(film_frames(film), FPS)


def test_after_selecting_an_older_take_of_one_clip_every_export_references_that_take(api, film):
    frame = shots(film)[1]
    first_take = frame.video.take_id
    response = api.post("/api/jobs/video-generation", {"frame_id": frame.pk}, format="json")
    assert response.status_code == 202
    drain()
    frame.video.refresh_from_db()
    redone = frame.video.take_id
    assert redone != first_take

    def take_ids(fmt: str) -> list[int]:
        clips = video_clips(read_back(export(api, film, fmt).content.decode(), fmt))
        if fmt == "otio":
            return [c.metadata["filmstudio"]["take_id"] for c in clips]
        comments = [c.metadata["cmx_3600"]["comments"] for c in clips]
        return [
            int(next(x for x in cs if x.startswith("TAKE ID")).split(": ")[1]) for cs in comments
        ]

    assert take_ids("otio")[1] == redone
    assert api.post(f"/api/takes/{first_take}/select").status_code == 200
    assert take_ids("otio")[1] == first_take
    assert take_ids("edl")[1] == first_take
    xml = export(api, film, "fcpxml").content.decode()
    assert f'key="com.filmstudio.take-id" value="{first_take}"' in xml
    assert f'value="{redone}"' not in xml
    first_file = Take.objects.get(pk=first_take).file
    assert blob_bytes(api, blob_src(api, film, frame)) == stored(first_file)

    response = api.post("/api/jobs/export", {"project_id": film.pk}, format="json")
    assert response.status_code == 202
    drain()
    job = Job.objects.get(pk=response.json()["id"])
    assert job.result["take_ids"][1] == first_take
    with zipfile.ZipFile(
        io.BytesIO(blob_bytes(api, api.get(f"/api/jobs/{job.pk}").json()["result"]["url"]))
    ) as bundle:
        names = bundle.namelist()
        assert f"clips/s01-f02-take{first_take}.mp4" in names
        assert bundle.read(f"clips/s01-f02-take{first_take}.mp4") == stored(first_file)
        assert not any(f"take{redone}" in n for n in names)


def test_a_shot_held_for_its_long_line_is_a_hold_after_its_clip_in_every_timeline(api, film):
    frame = shots(film)[2]
    words = "The storm will not wait for us, so we climb the stairs and light the lamp. " * 2
    response = api.patch(f"/api/frames/{frame.pk}", {"dialogue": words}, format="json")
    assert response.status_code == 200
    response = api.post("/api/jobs/audio-generation", {"frame_id": frame.pk}, format="json")
    assert response.status_code == 202
    drain()
    response = api.post("/api/jobs/video-stitching", {"project_id": film.pk}, format="json")
    assert response.status_code == 202
    drain()
    hold = film_frames(film) - 6 * 2 * FPS  # the film holds shot 3 while its line is spoken
    assert hold > FPS

    timeline = read_back(export(api, film, "otio").content.decode(), "otio")
    [video] = [t for t in timeline.tracks if t.kind == otio.schema.TrackKind.Video]
    items = list(video)
    assert [type(i).__name__ for i in items] == ["Clip"] * 3 + ["Gap"] + ["Clip"] * 3
    assert items[3].name == "Hold Scene 1 shot 3"
    assert items[3].duration() == RationalTime(hold, FPS)
    assert items[2].duration() == RationalTime(2 * FPS, FPS)  # the clip itself, not stretched
    assert timeline.duration() == RationalTime(film_frames(film), FPS)
    [dialogue] = [t for t in timeline.tracks if t.name == "Dialogue"]
    [line] = [c for c in dialogue.find_clips() if c.metadata["filmstudio"]["frame_id"] == frame.pk]
    assert line.range_in_parent().start_time == RationalTime(2 * 2 * FPS + 1, FPS)  # lead-in
    assert line.range_in_parent().end_time_exclusive() <= RationalTime(3 * 2 * FPS + hold, FPS)

    events = EVENT.findall(export(api, film, "edl").content.decode())
    assert len(events) == 6
    after = from_timecode(events[3][4], EDL_RATE) - from_timecode(events[2][5], EDL_RATE)
    assert after == RationalTime(hold, FPS)  # the hold is the one gap between two events
    root = ET.fromstring(export(api, film, "fcpxml").content)
    spine = list(root.find("./project/sequence/spine"))
    assert [e.tag for e in spine] == ["clip"] * 3 + ["gap"] + ["clip"] * 3
    assert fcpx_seconds(spine[3].get("duration")) == Fraction(hold, FPS)


def test_uploaded_music_is_the_music_track_under_the_whole_film(api, film, tmp_path):
    track = tmp_path / "score.wav"
    command = [ffmpeg.ffmpeg_binary(), "-nostdin", "-loglevel", "error", "-f", "lavfi"]
    command += ["-i", "sine=frequency=220:duration=3", str(track)]
    subprocess.run(command, check=True, timeout=60)
    with track.open("rb") as handle:
        response = api.post(f"/api/projects/{film.pk}/music", {"file": handle}, format="multipart")
    assert response.status_code == 200, response.content
    film.refresh_from_db()
    assert film.music == Project.Music.UPLOAD

    timeline = read_back(export(api, film, "otio").content.decode(), "otio")
    [music] = [t for t in timeline.tracks if t.name == "Music"]
    [clip] = list(music.find_clips())
    assert clip.range_in_parent() == otio.opentime.TimeRange(
        RationalTime(0, FPS), RationalTime(film_frames(film), FPS)
    )
    assert blob_bytes(api, clip.media_reference.target_url) == stored(film.music_file)

    response = api.post("/api/jobs/export", {"project_id": film.pk}, format="json")
    assert response.status_code == 202
    drain()
    job = api.get(f"/api/jobs/{response.json()['id']}").json()
    assert job["result"]["music"] is True
    with zipfile.ZipFile(io.BytesIO(blob_bytes(api, job["result"]["url"]))) as bundle:
        inside = read_back(bundle.read("timeline.otio").decode(), "otio")
        [music] = [t for t in inside.tracks if t.name == "Music"]
        path = music.find_clips()[0].media_reference.target_url
        assert path.startswith("music/") and bundle.read(path) == stored(film.music_file)


def test_a_generated_music_bed_is_rendered_into_the_zip(api, film, tmp_path):
    response = api.patch(f"/api/projects/{film.pk}", {"music": "generated"}, format="json")
    assert response.status_code == 200, response.content
    # Not kept by the stitch, so not in a timeline downloaded on its own: its track is empty.
    timeline = read_back(export(api, film, "otio").content.decode(), "otio")
    assert [len(t) for t in timeline.tracks if t.name == "Music"] == [0]

    response = api.post("/api/jobs/export", {"project_id": film.pk}, format="json")
    assert response.status_code == 202
    drain()
    job = api.get(f"/api/jobs/{response.json()['id']}").json()
    assert job["status"] == "succeeded", job["error"]
    with zipfile.ZipFile(io.BytesIO(blob_bytes(api, job["result"]["url"]))) as bundle:
        inside = read_back(bundle.read("timeline.otio").decode(), "otio")
        [music] = [t for t in inside.tracks if t.name == "Music"]
        [clip] = list(music.find_clips())
        assert clip.media_reference.target_url == "music/generated-bed.wav"
        assert clip.duration() == RationalTime(film_frames(film), FPS)
        bundle.extract("music/generated-bed.wav", tmp_path)
    bed = ffmpeg.probe(tmp_path / "music" / "generated-bed.wav")
    assert bed.has_audio and bed.duration == pytest.approx(film_frames(film) / FPS, abs=0.05)


# --- the hand-off zip ------------------------------------------------------------------------


def relative_paths(bundle: zipfile.ZipFile) -> dict[str, list[str]]:
    """Every media path each timeline in the zip names."""
    otio_clips = read_back(bundle.read("timeline.otio").decode(), "otio").find_clips()
    xml = ET.fromstring(bundle.read("timeline.fcpxml"))
    edl = bundle.read("timeline.edl").decode()
    return {
        "otio": [c.media_reference.target_url for c in otio_clips],
        "fcpxml": [a.get("src") for a in xml.iter("asset")],
        "edl": re.findall(r"^\* FROM CLIP: (.+)$", edl, re.MULTILINE),
    }


def test_the_export_job_zips_the_timelines_with_relative_paths_that_resolve_inside_it(
    api, film, tmp_path
):
    response = api.post("/api/jobs/export", {"project_id": film.pk}, format="json")
    assert response.status_code == 202
    body = response.json()
    assert (body["type"], body["status"], body["target"]) == (
        "export",
        "queued",
        {"type": "project", "id": film.pk},
    )
    film.refresh_from_db()
    assert film.status == Project.Status.COMPLETE  # an export changes nothing of the project
    drain()
    job = api.get(f"/api/jobs/{body['id']}").json()
    assert (job["status"], job["progress"]) == ("succeeded", 100), job["error"]
    url = job["result"]["url"]
    assert url.startswith(f"/blob/{film.pk}/exports/export-") and "sig=" in url
    assert Project.objects.get(pk=film.pk).status == Project.Status.COMPLETE

    data = blob_bytes(api, url)
    assert job["result"]["size"] == len(data)
    frames = shots(film)
    with zipfile.ZipFile(io.BytesIO(data)) as bundle:
        assert bundle.testzip() is None  # every CRC checks out
        names = bundle.namelist()
        clips = [
            f"clips/s{f.scene.order:02d}-f{f.order:02d}-take{f.video.take_id}.mp4" for f in frames
        ]
        fixed = ["README.txt", "timeline.otio", "timeline.fcpxml", "timeline.edl"]
        fixed += ["subtitles.srt", "subtitles.vtt", "film.mp4"]
        assert names[: len(fixed) + len(clips)] == [*fixed, *clips]
        timeline = read_back(bundle.read("timeline.otio").decode(), "otio")
        sounds = [
            c.media_reference.target_url
            for t in timeline.tracks
            if t.kind == otio.schema.TrackKind.Audio
            for c in t.find_clips()
        ]
        assert names[len(fixed) + len(clips) :] == sounds  # line and music stems, if any
        for fmt, paths in relative_paths(bundle).items():
            # relative, in film order, each a file of the zip (the EDL names the picture only)
            assert paths == (clips if fmt == "edl" else [*clips, *sounds]), fmt
            assert all(p in names and not p.startswith(("/", "http")) for p in paths)
        for frame, path in zip(frames, clips, strict=True):
            assert bundle.read(path) == stored(frame.video.take.file)
        assert bundle.read("film.mp4") == stored(Project.objects.get(pk=film.pk).final_video)
        bundle.extract("film.mp4", tmp_path)
        assert timeline.duration() == RationalTime(film_frames(film), FPS)
        probed = ffmpeg.probe(tmp_path / "film.mp4")
        assert probed.duration == pytest.approx(film_frames(film) / FPS, abs=0.1)

        check_the_sound(api, film, bundle, timeline, frames)
        readme = bundle.read("README.txt").decode()
        assert f"6 shots, {6 * 2 * FPS} frames at {FPS} fps" in readme


def check_the_sound(api, film, bundle, timeline, frames) -> None:
    # The subtitles are the film's (timed to where its mix has each line), as the API gives
    # them; each cue and its line on the dialogue track start with the same shot.
    subtitles = bundle.read("subtitles.srt").decode()
    assert subtitles == api.get(f"/api/projects/{film.pk}/subtitles.srt").content.decode()
    cues = list(srt.parse(subtitles))
    spoken = [f for f in frames if f.line_take_id]
    assert len(cues) == len(spoken) > 0
    [dialogue] = [t for t in timeline.tracks if t.name == "Dialogue"]
    lines = list(dialogue.find_clips())
    assert len(lines) == len(spoken)
    for cue, frame, line in zip(cues, spoken, lines, strict=True):
        position = frames.index(frame) * 2  # each shot lasts 2 s
        assert cue.start.total_seconds() == pytest.approx(position + LEAD_IN)
        assert line.metadata["filmstudio"] == {
            "frame_id": frame.pk,
            "take_id": frame.line_take_id,
        }
        placed = line.range_in_parent()
        assert placed.start_time == RationalTime(round((position + LEAD_IN) * FPS), FPS)
        assert placed.duration == RationalTime(round(frame.line_take.duration * FPS), FPS)
        assert bundle.read(line.media_reference.target_url) == stored(frame.line_take.file)
    vtt = webvtt.from_string(bundle.read("subtitles.vtt").decode())
    assert [c.text for c in vtt.captions] == [c.content for c in cues]


def test_a_new_export_retires_the_previous_zip(api, film):
    jobs = []
    for _ in range(2):
        response = api.post("/api/jobs/export", {"project_id": film.pk}, format="json")
        assert response.status_code == 202
        drain()
        jobs.append(Job.objects.get(pk=response.json()["id"]))
    first, second = (Job.objects.get(pk=j.pk) for j in jobs)
    assert first.result["file"] == "" and first.result["replaced_by"] == second.pk
    assert api.get(f"/api/jobs/{first.pk}").json()["result"]["url"] is None
    zips = default_storage.listdir(f"{film.pk}/exports")[1]
    assert [f"{film.pk}/exports/{n}" for n in zips] == [second.result["file"]]


def test_a_dry_run_quotes_nothing_to_pay_and_starts_nothing(api, film):
    response = api.post("/api/jobs/export", {"project_id": film.pk, "dry_run": True}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["estimate"]["total_usd"] == 0
    assert not Job.objects.filter(type=Job.Type.EXPORT).exists()


def test_an_export_while_one_runs_is_409(api, film):
    assert api.post("/api/jobs/export", {"project_id": film.pk}, format="json").status_code == 202
    response = api.post("/api/jobs/export", {"project_id": film.pk}, format="json")
    assert response.status_code == 409
    assert "already queued" in response.json()["detail"]
    drain()


# --- bad input -------------------------------------------------------------------------------


def test_an_unknown_or_missing_format_is_400_listing_the_valid_ones(api, user):
    project = ProjectFactory(owner=user)
    response = api.get(f"/api/projects/{project.pk}/export?format=aaf")
    assert response.status_code == 400
    assert response.json() == {"format": ["One of otio, fcpxml, edl; got 'aaf'."]}
    response = api.get(f"/api/projects/{project.pk}/export/")
    assert response.status_code == 400
    assert response.json() == {"format": ["One of otio, fcpxml, edl; none given."]}
    response = api.get(f"/api/projects/{project.pk}/export?format=otio&pretty=1")
    assert response.status_code == 400 and "pretty" in response.json()


def test_a_project_without_a_finished_cut_is_409_saying_what_is_missing(api, user):
    project = ProjectFactory(owner=user)
    empty = api.get(f"/api/projects/{project.pk}/export?format=otio")
    assert empty.status_code == 409
    assert empty.json()["detail"] == "No finished cut to export: the project has no shots yet."

    scene = SceneFactory(project=project, order=1)
    for order in (1, 2, 3):
        frame = FrameFactory(scene=scene, order=order)
        if order == 1:
            VideoFactory(frame=frame)  # a clip row with no take yet is not a clip
    response = api.get(f"/api/projects/{project.pk}/export?format=edl")
    assert response.status_code == 409
    assert response.json()["detail"] == (
        "No finished cut to export: 3 of 3 shots have no clip yet "
        "(scene 1 shot 1, scene 1 shot 2, scene 1 shot 3)."
    )
    job = api.post("/api/jobs/export", {"project_id": project.pk}, format="json")
    assert job.status_code == 409
    assert job.json()["detail"].startswith("Cannot export: 3 of 3 shots have no clip yet")
    assert not Job.objects.filter(type=Job.Type.EXPORT).exists()


def test_clips_without_a_cut_film_is_409_asking_for_the_stitch(api, film):
    Project.objects.filter(pk=film.pk).update(film_take=None)
    response = api.get(f"/api/projects/{film.pk}/export?format=fcpxml")
    assert response.status_code == 409
    assert "the film has not been cut yet: stitch it first" in response.json()["detail"]


def test_another_users_project_is_404_for_both(film, other_api):
    assert other_api.get(f"/api/projects/{film.pk}/export?format=otio").status_code == 404
    response = other_api.post("/api/jobs/export", {"project_id": film.pk}, format="json")
    assert response.status_code == 404
    assert not Job.objects.filter(type=Job.Type.EXPORT).exists()


def test_the_schema_documents_both_endpoints(api):
    schema = api.get("/api/schema?format=json").json()
    timeline = schema["paths"]["/api/projects/{project_id}/export"]["get"]
    [param] = [p for p in timeline["parameters"] if p["name"] == "format"]
    assert param["required"] and sorted(param["schema"]["enum"]) == ["edl", "fcpxml", "otio"]
    assert set(timeline["responses"]["200"]["content"]) == {
        "application/json",
        "application/xml",
        "text/plain",
    }
    assert {"400", "404", "409"} <= set(timeline["responses"])
    job = schema["paths"]["/api/jobs/export"]["post"]
    assert "202" in job["responses"] and "409" in job["responses"]
