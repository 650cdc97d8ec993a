"""Hand-off to an editor: the film's current takes as an editable timeline.

One video track with a clip per frame in film order, placed where the stitch puts it (in whole
frames at `MEDIA_FPS`: rational time, never float seconds added up; a shot whose line outlasts
its clip is held on its last frame in the film, which the timeline shows as a gap after the
clip), a dialogue track with each spoken line where the mix has it, a music track, a marker per
scene on its first shot, and the frame, take and prompt in each clip's metadata. Written by
OpenTimelineIO and its adapters as OTIO JSON, Final Cut Pro X XML and a CMX 3600 EDL. Media
references are whatever `locate` makes of a file: signed URLs for a timeline downloaded on its
own, paths relative to the timeline inside the hand-off zip."""

import posixpath
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import opentimelineio as otio
from django.conf import settings
from opentimelineio.opentime import RationalTime, TimeRange

from filmstudio.exceptions import ConflictError
from generation.pipeline import cut_problem
from generation.sound import subtitles
from generation.steps.stitch import LINE_LEAD_IN, film_frames
from generation.steps.stitch import timeline as stitch_timeline
from media.ffmpeg import canonical_size
from projects.models import Frame, Project, Scene, Take


@dataclass(frozen=True)
class TimelineFormat:
    adapter: str  # OpenTimelineIO adapter name
    suffix: str
    content_type: str


FORMATS: dict[str, TimelineFormat] = {
    "otio": TimelineFormat("otio_json", ".otio", "application/json"),
    "fcpxml": TimelineFormat("fcpx_xml", ".fcpxml", "application/xml"),
    "edl": TimelineFormat("cmx_3600", ".edl", "text/plain"),
}


@dataclass(frozen=True)
class Media:
    """A stored file (`name`), or a file on this machine made for the zip (`local`), and where
    it sits in the hand-off zip (`path`)."""

    name: str
    path: str
    local: str = ""


@dataclass(frozen=True)
class Shot:
    """A frame's current clip on the video track, in frames: it starts at `start`, its clip
    lasts `length`, and the film holds its last frame for `hold` more."""

    scene: Scene
    frame: Frame
    take_id: int
    start: int
    length: int
    hold: int
    media: Media

    @property
    def name(self) -> str:
        return f"Scene {self.scene.order} shot {self.frame.order}"


@dataclass(frozen=True)
class Sound:
    """A line or the music on an audio track: `start` and `length` in frames."""

    name: str
    start: int
    length: int
    media: Media
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Cut:
    """What an export is made of: the current takes, placed in frames."""

    project: Project
    fps: int
    width: int
    height: int
    shots: list[Shot]
    lines: list[Sound]
    music: list[Sound]
    film: Take

    @property
    def length(self) -> int:
        return sum(shot.length + shot.hold for shot in self.shots)


Locate = Callable[[Media], str]
MUSIC_BED_PATH = "music/generated-bed.wav"


# --- reading the current takes ---------------------------------------------------------------


def _frame_count(seconds: float | None, fps: int) -> int:
    return max(1, round((seconds or 0) * fps))


def _suffix(name: str, default: str) -> str:
    return posixpath.splitext(name)[1] or default


def _stem(frame: Frame) -> str:
    return f"s{frame.scene.order:02d}-f{frame.order:02d}"


def _placed(sounds: list[Sound], end: int) -> list[Sound]:
    """Sounds in start order, each cut short where the next starts or the film ends (a track
    holds one item at a time, and nothing may run past the picture)."""
    sounds = sorted((s for s in sounds if s.start < end), key=lambda s: s.start)
    placed = []
    for index, sound in enumerate(sounds):
        limit = sounds[index + 1].start if index + 1 < len(sounds) else end
        length = min(sound.length, limit - sound.start)
        if length > 0:
            placed.append(Sound(sound.name, sound.start, length, sound.media, sound.metadata))
    return placed


def _music(project: Project, length: int, bed: Media | None = None) -> list[Sound]:
    """The music under the whole film, as the mix lays it (looped or cut to the film, faded):
    the uploaded track, or the generated bed when the caller rendered one (`bed`)."""
    if project.music == Project.Music.UPLOAD and project.music_file:
        name = project.music_file
        media = Media(name, f"music/{posixpath.basename(name)}")
    elif project.music == Project.Music.GENERATED and bed is not None:
        media = bed
    else:
        return []
    laid = {"music": project.music, "laid": "looped or cut to the film, faded in and out"}
    return [Sound("Music", 0, length, media, laid)]


def project_cut(project: Project) -> Cut:
    """The current takes of a finished film, placed in frames as the stitch places them;
    `ConflictError` naming what is missing when there is no finished cut."""
    frames = film_frames(project)
    problem = cut_problem(project, frames)
    if problem:
        raise ConflictError(f"No finished cut to export: {problem}")
    fps = int(settings.MEDIA_FPS)
    shots, lines = [], []
    for placed in stitch_timeline(frames, fps):
        frame, video = placed.frame, placed.frame.video
        take_id = video.take_id
        assert take_id is not None  # cut_problem checked
        start, length = round(placed.start * fps), _frame_count(placed.clip, fps)
        path = f"clips/{_stem(frame)}-take{take_id}{_suffix(video.file, '.mp4')}"
        hold = round(placed.length * fps) - length
        shot = Shot(frame.scene, frame, take_id, start, length, hold, Media(video.file, path))
        shots.append(shot)
        line = placed.line
        if line is not None and line.duration:
            path = f"lines/{_stem(frame)}-take{line.pk}{_suffix(line.file, '.wav')}"
            lines.append(
                Sound(
                    f"Line {shot.name}",
                    start + round(LINE_LEAD_IN * fps),
                    _frame_count(line.duration, fps),
                    Media(line.file, path),
                    {"frame_id": frame.pk, "take_id": line.pk},
                )
            )
    width, height = canonical_size(project.aspect_ratio, settings.MEDIA_BASE_HEIGHT)
    end = sum(s.length + s.hold for s in shots)
    film = project.film_take
    assert film is not None  # cut_problem checked
    return Cut(
        project=project,
        fps=fps,
        width=width,
        height=height,
        shots=shots,
        lines=_placed(lines, end),
        music=_music(project, end),
        film=film,
    )


def wants_music_bed(cut: Cut) -> bool:
    """The film's music is the generated bed, which the stitch makes and does not keep."""
    return cut.project.music == Project.Music.GENERATED and not cut.music


def with_music_bed(cut: Cut, local: str) -> Cut:
    """`cut` with the generated bed (rendered to `local` for the zip) on its music track."""
    bed = Media("", MUSIC_BED_PATH, local=local)
    return replace(cut, music=_music(cut.project, cut.length, bed))


# --- the timeline ----------------------------------------------------------------------------


def _range(start: int, length: int, fps: int) -> TimeRange:
    return TimeRange(RationalTime(start, fps), RationalTime(length, fps))


def _shot_clip(shot: Shot, cut: Cut, locate: Locate) -> otio.schema.Clip:
    frame, take_id = shot.frame, shot.take_id
    reference = otio.schema.ExternalReference(
        target_url=locate(shot.media), available_range=_range(0, shot.length, cut.fps)
    )
    reference.metadata["fcpx"] = {  # the FCP X adapter writes these on the asset-clip
        "note": frame.prompt,
        "metadata": [
            {"com.filmstudio.frame-id": str(frame.pk)},
            {"com.filmstudio.take-id": str(take_id)},
        ],
    }
    clip = otio.schema.Clip(
        name=shot.name,
        media_reference=reference,
        source_range=_range(0, shot.length, cut.fps),
        metadata={
            "filmstudio": {
                "frame_id": frame.pk,
                "take_id": take_id,
                "keyframe_take_id": frame.keyframe_take_id,
                "scene_id": shot.scene.pk,
                "scene_order": shot.scene.order,
                "frame_order": frame.order,
                "prompt": frame.prompt,
                "camera": frame.camera,
                "dialogue": frame.dialogue,
            },
            # The EDL's reel (8 characters) and comment lines under the event.
            "cmx_3600": {
                "reel": f"S{shot.scene.order:02d}F{frame.order:02d}",
                "comments": [f"FRAME ID: {frame.pk}", f"TAKE ID: {take_id}"],
            },
        },
    )
    return clip


def _scene_marker(scene: Scene, fps: int) -> otio.schema.Marker:
    return otio.schema.Marker(
        name=scene.title or f"Scene {scene.order}",
        marked_range=_range(0, 1, fps),
        color=otio.schema.MarkerColor.BLUE,
        metadata={"filmstudio": {"scene_id": scene.pk, "scene_order": scene.order}},
    )


def _sound_track(name: str, sounds: list[Sound], fps: int, locate: Locate) -> otio.schema.Track:
    track = otio.schema.Track(name=name, kind=otio.schema.TrackKind.Audio)
    cursor = 0
    for sound in sounds:
        if sound.start > cursor:
            track.append(otio.schema.Gap(source_range=_range(0, sound.start - cursor, fps)))
        reference = otio.schema.ExternalReference(
            target_url=locate(sound.media), available_range=_range(0, sound.length, fps)
        )
        track.append(
            otio.schema.Clip(
                name=sound.name,
                media_reference=reference,
                source_range=_range(0, sound.length, fps),
                metadata={"filmstudio": sound.metadata},
            )
        )
        cursor = sound.start + sound.length
    return track


def timeline(cut: Cut, locate: Locate) -> otio.schema.Timeline:
    project = cut.project
    video = otio.schema.Track(name="Video", kind=otio.schema.TrackKind.Video)
    marked: set[int] = set()
    for shot in cut.shots:
        clip = _shot_clip(shot, cut, locate)
        if shot.scene.pk not in marked:
            marked.add(shot.scene.pk)
            clip.markers.append(_scene_marker(shot.scene, cut.fps))
        video.append(clip)
        if shot.hold:  # the film holds the clip's last frame while its line is spoken
            hold = otio.schema.Gap(source_range=_range(0, shot.hold, cut.fps))
            hold.name = f"Hold {shot.name}"
            hold.metadata["filmstudio"] = {"hold_of_frame_id": shot.frame.pk, "frames": shot.hold}
            video.append(hold)
    result = otio.schema.Timeline(
        name=project.title,
        metadata={
            "filmstudio": {
                "project_id": project.pk,
                "film_take_id": cut.film.pk,
                "fps": cut.fps,
                "width": cut.width,
                "height": cut.height,
            }
        },
    )
    result.tracks.extend(
        [
            video,
            _sound_track("Dialogue", cut.lines, cut.fps, locate),
            _sound_track("Music", cut.music, cut.fps, locate),
        ]
    )
    return result


def _fcpx_text(cut: Cut, built: otio.schema.Timeline) -> str:
    # The adapter knows only broadcast rates; any whole rate is one frame per 1/fps s. (OTIO
    # loads the adapter from its plugin manifest as a module of its own: patch that one.)
    adapter = otio.adapters.from_name("fcpx_xml").module()
    adapter.FRAMERATE_FRAMEDURATION.setdefault(cut.fps, f"1/{cut.fps}s")
    text = otio.adapters.write_to_string(built, "fcpx_xml")
    # It names formats by probing local files with ffprobe (none here): give FCP the size.
    root = ET.fromstring(text)
    for element in root.iter("format"):
        if not element.get("name"):
            element.attrib.pop("name", None)
        element.set("width", str(cut.width))
        element.set("height", str(cut.height))
    for asset in root.iter("asset"):
        if asset.get("hasVideo") == "1":
            asset.set("hasAudio", "1")  # every clip carries an audio stream (silent or not)
    ET.indent(root, space="    ")
    body = ET.tostring(root, encoding="unicode")
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE fcpxml>\n{body}\n'


SMPTE_RATES = (24, 25, 30, 48, 50, 60)


def edl_rate(fps: int) -> int:
    """The timecode rate of the EDL: SMPTE timecode has a few rates, so a film at another one
    is counted at the first of them that it divides (12 fps at 24: every cut still on a frame)."""
    for rate in SMPTE_RATES:
        if rate % fps == 0:
            return rate
    raise ConflictError(
        f"An EDL counts SMPTE timecode ({', '.join(map(str, SMPTE_RATES))} fps) and the film's "
        f"{fps} fps divides none of them: export OTIO or FCP X XML instead."
    )


def _write(cut: Cut, built: otio.schema.Timeline, fmt: str) -> str:
    if fmt == "fcpxml":
        return _fcpx_text(cut, built)
    if fmt == "edl":
        built.name = " ".join(built.name.split())  # the TITLE line is one line
        return otio.adapters.write_to_string(built, "cmx_3600", rate=edl_rate(cut.fps))
    return otio.adapters.write_to_string(built, FORMATS[fmt].adapter)


def timeline_text(cut: Cut, fmt: str, locate: Locate) -> str:
    """The cut as `fmt` (a key of `FORMATS`)."""
    return _write(cut, timeline(cut, locate), fmt)


def timeline_texts(cut: Cut, locate: Locate) -> dict[str, str]:
    """The cut in every format, from one timeline (building it is most of the work). The EDL
    goes last: its writer may adjust the timeline it is given."""
    built = timeline(cut, locate)
    return {fmt: _write(cut, built, fmt) for fmt in ("otio", "fcpxml", "edl")}


# --- the hand-off zip ------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One file of the zip: a stored file (`name`), a local file (`local`) or generated text."""

    path: str
    name: str = ""
    local: str = ""
    text: str = ""


def _readme(cut: Cut, timelines: list[str]) -> str:
    project = cut.project
    seconds = cut.length / cut.fps
    lines_note = f"{len(cut.lines)} spoken line(s)" if cut.lines else "no spoken lines yet"
    return "\n".join(
        [
            f"{project.title}: hand-off to an editor (FilmStudio project {project.pk})",
            "",
            f"{len(cut.shots)} shots, {cut.length} frames at {cut.fps} fps ({seconds:.3f} s), "
            f"{cut.width}x{cut.height}; {lines_note}.",
            "",
            "Open one timeline in your editor; its media paths are relative to this folder:",
            *(f"  {name}" for name in timelines),
            "  film" + _suffix(cut.film.file, ".mp4") + "   the final cut as rendered",
            "  clips/          the current take of every shot, in film order",
            "  lines/, music/  sound stems (when there are any)",
            "  subtitles.srt, subtitles.vtt",
            "",
        ]
    )


def bundle_entries(cut: Cut) -> list[Entry]:
    """Every file of the hand-off zip, timelines first (they are small), media after."""

    def relative(media: Media) -> str:
        return media.path

    texts = timeline_texts(cut, relative)
    timelines = [f"timeline{FORMATS[fmt].suffix}" for fmt in texts]
    entries = [Entry("README.txt", text=_readme(cut, timelines))]
    entries += [
        Entry(path, text=text) for path, text in zip(timelines, texts.values(), strict=True)
    ]
    entries += [
        Entry(f"subtitles.{fmt}", text=subtitles(cut.project, fmt)) for fmt in ("srt", "vtt")
    ]
    entries.append(Entry(f"film{_suffix(cut.film.file, '.mp4')}", name=cut.film.file))
    entries += [Entry(shot.media.path, name=shot.media.name) for shot in cut.shots]
    entries += [
        Entry(s.media.path, name=s.media.name, local=s.media.local)
        for s in [*cut.lines, *cut.music]
    ]
    return entries
