"""The final cut: the clips stream-copied end to end; with sound, each spoken line placed at
its shot's start (a shot whose line is longer than its clip holds its last frame until the
line ends), the music under it, the mix normalized and muxed with the picture copied; the
subtitles timed to the lines, burnt in when the project asks."""

import tempfile
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction

from generation import services
from generation.models import GenerationJob
from generation.providers.base import PermanentProviderError
from generation.steps.common import delete_after_commit, film_format, store_file
from media import ffmpeg
from media.storage import delete_name
from projects.models import Frame, Project, Take
from projects.sound import Cue, spoken_text, srt_text, subtitle_text
from projects.takes import film_inputs, take_record

# A line starts this long after its shot's cut, and its shot lasts at least this long after it.
LINE_LEAD_IN = 0.1
LINE_TAIL = 0.3


def _local_copy(name: str, folder: Path) -> Path:
    try:
        return Path(default_storage.path(name))
    except NotImplementedError:  # remote storage: fetch a copy, chunk by chunk
        target = folder / Path(name).name
        with default_storage.open(name, "rb") as source, target.open("wb") as out:
            for chunk in iter(lambda: source.read(1 << 20), b""):
                out.write(chunk)
        return target


@dataclass(frozen=True)
class Shot:
    frame: Frame
    clip: float  # seconds of its clip
    length: float  # seconds it lasts in the film (its clip held when its line is longer)
    start: float  # seconds into the film
    line: Take | None  # its spoken line, when it has one


def _frames_of(fps: int, seconds: float) -> int:
    return max(1, round(seconds * fps))


def timeline(frames: list[Frame], fps: int) -> list[Shot]:
    """Where each shot and its line fall, in whole frames (what the stitch makes)."""
    shots, start = [], 0
    for frame in frames:
        clip = float(frame.video.duration or frame.duration)
        line = frame.line_take if spoken_text(frame) else None
        count = _frames_of(fps, clip)
        if line is not None and line.duration:
            count = max(count, _frames_of(fps, LINE_LEAD_IN + line.duration + LINE_TAIL))
        shots.append(Shot(frame, clip, count / fps, start / fps, line))
        start += count
    return shots


def cues(shots: list[Shot]) -> list[Cue]:
    """A cue per spoken line, from when it starts to when it ends."""
    found = []
    for shot in shots:
        text = subtitle_text(shot.frame)
        if shot.line is not None and shot.line.duration and text:
            begin = shot.start + LINE_LEAD_IN
            found.append(Cue(round(begin, 3), round(begin + shot.line.duration, 3), text))
    return found


def film_frames(project: Project) -> list[Frame]:
    return list(
        Frame.objects.filter(scene__project=project)
        .select_related("video", "line_take", "speaker", "scene")
        .prefetch_related("scene__characters")
        .order_by("scene__order", "order")
    )


def _pictures(shots: list[Shot], folder: Path, fmt: ffmpeg.CanonicalFormat) -> list[Path]:
    """Each shot's clip; one whose line outlasts it is held on its last frame (re-encoded)."""
    paths = []
    for index, shot in enumerate(shots):
        path = _local_copy(shot.frame.video.file, folder)
        if shot.length > shot.clip + 0.5 / fmt.fps:
            held = folder / f"held-{index:04d}.mp4"
            ffmpeg.normalize_clip(
                path, held, fmt=fmt, duration=shot.length, timeout=settings.FFMPEG_TIMEOUT
            )
            path = held
        paths.append(path)
    return paths


def _music(project: Project, folder: Path, duration: float) -> Path | None:
    if project.music == Project.Music.UPLOAD and project.music_file:
        return _local_copy(project.music_file, folder)
    if project.music == Project.Music.GENERATED:
        return ffmpeg.music_bed(
            folder / "bed.wav", duration=duration, seed=project.pk, timeout=settings.FFMPEG_TIMEOUT
        )
    return None


def cut(
    project: Project, frames: list[Frame], folder: Path, *, stems: Path | None = None
) -> tuple[Path, dict]:
    """The film, made in `folder`, and what the job reports about it; with `stems` (a folder),
    the dialogue and music as they sit in the mix are written there too (to measure them)."""
    fmt = film_format(project)
    shots = timeline(frames, fmt.fps)
    film, picture = folder / f"film-{project.pk}.mp4", folder / "picture.mp4"
    result = ffmpeg.stitch(
        _pictures(shots, folder, fmt), picture, fmt=fmt, timeout=settings.FFMPEG_TIMEOUT
    )
    held = [s.frame.pk for s in shots if s.length > s.clip + 0.5 / fmt.fps]
    summary: dict = {"method": result.method, "held": held}
    lines = [
        ffmpeg.PlacedLine(_local_copy(s.line.file, folder), s.start + LINE_LEAD_IN)
        for s in shots
        if s.line is not None
    ]
    music = _music(project, folder, result.info.duration)
    if lines or music is not None:
        mix = ffmpeg.mix_sound(
            picture, film, lines=lines, music=music, stems=stems, timeout=settings.FFMPEG_TIMEOUT
        )
        summary["method"] = f"{result.method}+mix"
        summary["loudness"] = {
            "integrated_lufs": mix.loudness.integrated,
            "true_peak_dbtp": mix.loudness.true_peak,
            "lra_lu": mix.loudness.lra,
            "normalization": mix.normalization,
        }
    else:  # no sound of ours: the stream copy is the film
        picture.rename(film)
    timed = cues(shots)
    summary["cues"] = [[c.start, c.end, c.text] for c in timed]
    summary["lines"] = len(lines)
    summary["music"] = project.music if music is not None else "none"
    if project.burn_subtitles and timed:
        subtitles = folder / "cues.srt"
        subtitles.write_text(srt_text(timed), encoding="utf-8")
        burnt = folder / f"burnt-{project.pk}.mp4"
        ffmpeg.burn_subtitles(
            film, burnt, subtitles=subtitles, fmt=fmt, timeout=settings.FFMPEG_TIMEOUT
        )
        film = burnt
        summary["method"] += "+subtitles"
    return film, summary


def run(job: GenerationJob) -> None:
    project = job.project
    frames = film_frames(project)
    ready = [f for f in frames if (c := getattr(f, "video", None)) is not None and c.file]
    if not frames or len(ready) < len(frames):
        raise PermanentProviderError("Cannot stitch: not every frame has a ready clip.")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        services.job_progress(job, 20)
        film, summary = cut(project, frames, folder)
        info = ffmpeg.probe(film)
        poster = folder / f"poster-{project.pk}.jpg"
        ffmpeg.poster(film, poster, timeout=settings.FFMPEG_TIMEOUT, info=info)
        film_name = store_file(project.pk, "final", "film", film)
        poster_name = store_file(project.pk, "final", "poster", poster)
    with transaction.atomic():
        locked = Project.objects.select_for_update().get(pk=project.pk)
        delete_after_commit(locked.final_poster)  # earlier cuts stay, as takes
        locked.final_poster = poster_name
        locked.save(update_fields=["final_poster", "updated_at"])
        take = take_record(
            project_id=project.pk,
            kind=Take.Kind.FILM,
            file=film_name,
            duration=round(info.duration, 3),
            inputs=film_inputs(locked, frames),
            provider="ffmpeg",
            model=summary["method"],
            source_job_id=job.pk,
        )
        summary = {**summary, "duration": take.duration, "clips": len(frames), "take_id": take.pk}
        won = services.job_succeed(job, summary)
        if not won:  # cancelled meanwhile: keep the previous film
            transaction.set_rollback(True)
    if not won:
        delete_name(film_name)
        delete_name(poster_name)
