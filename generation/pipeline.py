"""The pipeline's stages: what each needs before it starts, what starts after it, and how far
the whole project has come. Characters → (approval) → scenes → frames (one job per scene) →
videos (one job per frame) and spoken lines (one job per scene) → stitching (once every clip
is ready and no line is being spoken) → complete."""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction
from django.db.models import Count, Q

from filmstudio.exceptions import ConflictError
from filmstudio.queries import columns, instance_from
from generation import costs, estimates, events, queue
from generation.jobs import (
    active,
    busy_targets,
    hold_project_lock,
    job_create,
    lock_project,
    refuse_while_busy,
)
from generation.jobtypes import job_type, project_waiter_types
from generation.models import GenerationJob
from projects.models import Character, Frame, Project, ProjectObject, Scene, Video
from projects.takes import wanted_lines, with_line_inputs

logger = logging.getLogger(__name__)

Job = GenerationJob


def admit_start(
    project: Project,
    type: str,
    target_type: str,
    target_id: int,
    params: dict | None = None,
    *,
    what: str,
) -> None:
    """A person asks for work: refuse it now if its quote does not fit the budget or the
    user's limits (`generation.costs.admit`), before anything is created."""
    items = estimates.request(project, type, target_type, target_id, params)
    costs.admit(project, estimates.document(project, items), what=what)


def set_status(project: Project, status: str) -> None:
    if project.status != status:
        project.status = status
        project.save(update_fields=["status", "updated_at"])
        events.publish_entity(project)


def scene_generation_started(project: Project) -> bool:
    return (
        project.scenes.exists()
        or project.jobs.filter(type=Job.Type.SCENES).exclude(status=Job.Status.CANCELLED).exists()
    )


def project_has_active_jobs(project: Project) -> bool:
    """Pipeline work is active (a job waiting for the project, an agent run, is not that)."""
    return active(project.jobs.exclude(type__in=project_waiter_types()))


def _project_job(project: Project, type: str, **kwargs) -> Job:
    return job_create(
        project=project,
        type=type,
        target_type=Job.TargetType.PROJECT,
        target_id=project.pk,
        **kwargs,
    )


def show_stage(project: Project, type: str) -> None:
    """The project shows the status of the stage a job of `type` runs (the job-type table's)."""
    set_status(project, job_type(type).project_status)


def _start_stage(project: Project, type: str, **kwargs) -> Job:
    job = _project_job(project, type, **kwargs)
    show_stage(project, type)
    return job


# --- characters and the approval gate ------------------------------------------------------


def start_character_generation(*, project: Project, count: int = 4, instructions: str = "") -> Job:
    with transaction.atomic():
        project = lock_project(project)
        if scene_generation_started(project):
            raise ConflictError("Scene generation has started: the cast can no longer change.")
        if active(project.jobs.filter(type=Job.Type.CHARACTERS)):
            raise ConflictError("Character generation is already queued or running.")
        params = {"count": count, "instructions": instructions}
        admit_start(
            project, Job.Type.CHARACTERS, Job.TargetType.PROJECT, project.pk, params,
            what="character generation",
        )  # fmt: skip
        job = _start_stage(project, Job.Type.CHARACTERS, params=params)
    return job


def cast_problem(project: Project) -> str | None:
    counts = project.characters.aggregate(
        approved=Count("id", filter=Q(status=Character.Status.APPROVED)),
        undecided=Count(
            "id", filter=Q(status__in=[Character.Status.PENDING, Character.Status.GENERATING])
        ),
    )
    if counts["undecided"]:
        return f"{counts['undecided']} character(s) still await generation or a decision."
    if not counts["approved"]:
        return "No character is approved yet: approve at least one character first."
    return None


def start_scene_generation(*, project: Project) -> Job:
    with transaction.atomic():
        project = lock_project(project)
        problem = cast_problem(project)
        if problem:
            raise ConflictError(f"Cannot generate scenes: {problem}")
        if active(project.jobs.filter(type=Job.Type.SCENES)):
            raise ConflictError("Scene generation is already queued or running.")
        admit_scenes(project)
        return _start_stage(project, Job.Type.SCENES)


def admit_scenes(project: Project) -> None:
    admit_start(
        project, Job.Type.SCENES, Job.TargetType.PROJECT, project.pk, what="scene generation"
    )


def cast_would_open(project: Project) -> bool:
    """This decision settles the cast: scene generation (and what follows it) starts now."""
    return cast_problem(project) is None and not active(project.jobs.filter(type=Job.Type.SCENES))


def cast_decided(*, project: Project) -> Job | None:
    """After every approve/reject (project row locked): open the gate when the cast is settled."""
    if cast_problem(project) is not None:
        return None
    if active(project.jobs.filter(type=Job.Type.SCENES)):
        return None
    logger.info("cast of project %s settled: scene generation starts", project.pk)
    return _start_stage(project, Job.Type.SCENES)


# --- frames and clips ----------------------------------------------------------------------


def _frames_job(project: Project, scene: Scene, parent: Job | None = None) -> Job:
    return job_create(
        project=project,
        type=Job.Type.FRAMES,
        target_type=Job.TargetType.SCENE,
        target_id=scene.pk,
        parent=parent,
    )


def _video_job(
    project: Project, frame: Frame, parent: Job | None = None, instructions: str = ""
) -> Job:
    video, _ = Video.objects.get_or_create(frame=frame)
    if not video.take_id and video.status != Video.Status.QUEUED:
        video.status = Video.Status.QUEUED  # a clip redone keeps showing its current take
        video.save(update_fields=["status", "updated_at"])
    return job_create(
        project=project,
        type=Job.Type.VIDEOS,
        target_type=Job.TargetType.FRAME,
        target_id=frame.pk,
        parent=parent,
        params={"instructions": instructions} if instructions else None,
    )


def _unit_job(project: Project, type: str, target_type: str, target_id: int, instructions: str):
    return job_create(
        project=project,
        type=type,
        target_type=target_type,
        target_id=target_id,
        params={"instructions": instructions} if instructions else None,
    )


def start_portrait_generation(*, character: Character, instructions: str = "") -> Job:
    """One portrait drawn again; the keyframes that show the character become stale."""
    with transaction.atomic():
        project = lock_project(character.project_id)
        character = Character.objects.get(pk=character.pk)
        if character.status in (Character.Status.GENERATING, Character.Status.REJECTED):
            raise ConflictError(f"This character is {character.status}: no portrait to redo.")
        refuse_while_busy(project, f"the portrait of {character.name}", character_id=character.pk)
        admit_start(
            project, Job.Type.PORTRAIT, Job.TargetType.CHARACTER, character.pk,
            what=f"the portrait of {character.name}",
        )  # fmt: skip
        return _unit_job(
            project, Job.Type.PORTRAIT, Job.TargetType.CHARACTER, character.pk, instructions
        )


def start_keyframe_generation(*, frame: Frame, instructions: str = "") -> Job:
    """One keyframe drawn again from the frame's text (the shot list is not rewritten)."""
    with transaction.atomic():
        project = lock_project(frame.scene.project_id)
        frame = Frame.objects.select_related("scene").get(pk=frame.pk)
        if not frame.prompt:
            raise ConflictError(f"Frame {frame.pk} has no shot text yet.")
        refuse_while_busy(
            project, f"frame {frame.pk}'s keyframe", scene_id=frame.scene_id, frame_id=frame.pk
        )
        admit_start(
            project, Job.Type.KEYFRAME, Job.TargetType.FRAME, frame.pk,
            what=f"frame {frame.pk}'s keyframe",
        )  # fmt: skip
        return _unit_job(project, Job.Type.KEYFRAME, Job.TargetType.FRAME, frame.pk, instructions)


# What an image edit works on, by target type: (the model, its label, what it is called, its
# image's name, the `refuse_while_busy` arguments).
_EDITED: dict[str, tuple[type[Character | ProjectObject | Frame], str, Callable, str, Callable]] = {
    Job.TargetType.CHARACTER: (
        Character, "Character", lambda u: f"the portrait of {u.name}", "portrait",
        lambda u: {"character_id": u.pk},
    ),
    Job.TargetType.OBJECT: (
        ProjectObject, "Object", lambda u: f"the reference image of {u.name}", "reference image",
        lambda u: {"object_id": u.pk},
    ),
    Job.TargetType.FRAME: (
        Frame, "Frame", lambda u: f"frame {u.pk}'s keyframe", "keyframe",
        lambda u: {"scene_id": u.scene_id, "frame_id": u.pk},
    ),
}  # fmt: skip


def _edited_unit(project: Project, target_type: str, target_id: int) -> tuple[str, str]:
    """What an image edit works on, as it is now: its name, or `ConflictError` when it has no
    image yet or a job works on it (project row locked)."""
    model, label, called, image, busy = _EDITED[target_type]
    unit = model.objects.filter(pk=target_id).first()
    if unit is None:
        raise ConflictError(f"{label} {target_id} no longer exists.")
    what = called(unit)
    if not unit.image:
        raise ConflictError(f"Cannot edit {what}: it has no {image} yet.")
    refuse_while_busy(project, what, **busy(unit))
    return what, unit.image


def start_image_edit(
    *,
    instruction: str,
    character: Character | None = None,
    frame: Frame | None = None,
    obj: ProjectObject | None = None,
) -> Job:
    """A portrait, keyframe or object's reference image edited by an instruction: the image
    model gets the current image and the text; the result is a new current take (dependents
    become stale)."""
    if character is not None:
        project_id, target_type, target_id = (
            character.project_id, Job.TargetType.CHARACTER, character.pk,
        )  # fmt: skip
    elif frame is not None:
        project_id, target_type, target_id = frame.scene.project_id, Job.TargetType.FRAME, frame.pk
    elif obj is not None:
        project_id, target_type, target_id = obj.project_id, Job.TargetType.OBJECT, obj.pk
    else:
        raise ValueError("an image edit needs a character, a frame or an object")
    with transaction.atomic():
        project = lock_project(project_id)
        what, _ = _edited_unit(project, target_type, target_id)
        params = {"instruction": instruction}
        admit_start(
            project, Job.Type.IMAGE_EDIT, target_type, target_id, params, what=f"editing {what}"
        )
        return job_create(
            project=project,
            type=Job.Type.IMAGE_EDIT,
            target_type=target_type,
            target_id=target_id,
            params=params,
        )


def start_reference_generation(
    *, obj: ProjectObject, instructions: str = "", redraw: bool = False
) -> Job:
    """An object's reference image, drawn when it is created or again (`redraw`: a new seed,
    with the producer's `instructions`); the keyframes of the scenes using it become stale.
    Refused while a job draws or edits it, or past the budget."""
    with transaction.atomic():
        project = lock_project(obj.project_id)
        current = ProjectObject.objects.filter(pk=obj.pk).first()  # as it is now
        if current is None:  # deleted since the request found it
            raise ConflictError(f"Object {obj.pk} no longer exists.")
        obj = current
        what = f"the reference image of {obj.name}"
        refuse_while_busy(project, what, object_id=obj.pk)
        params = {
            **({"redraw": True} if redraw else {}),
            **({"instructions": instructions} if instructions else {}),
        }
        admit_start(project, Job.Type.REFERENCE, Job.TargetType.OBJECT, obj.pk, params, what=what)
        return job_create(
            project=project,
            type=Job.Type.REFERENCE,
            target_type=Job.TargetType.OBJECT,
            target_id=obj.pk,
            params=params or None,
        )


def start_frame_generation(*, project: Project, scene: Scene | None = None) -> Job:
    with transaction.atomic():
        project = lock_project(project)
        busy = busy_targets(project, [Job.Type.FRAMES], Job.TargetType.SCENE)
        if scene is not None:
            if scene.status != Scene.Status.READY:
                raise ConflictError(f"Scene {scene.order} has no content yet ({scene.status}).")
            if scene.pk in busy:
                raise ConflictError(f"Frames of scene {scene.order} are already being generated.")
            admit_start(
                project, Job.Type.FRAMES, Job.TargetType.SCENE, scene.pk,
                what=f"the frames of scene {scene.order}",
            )  # fmt: skip
            job = _frames_job(project, scene)
        else:
            scenes = list(project.scenes.order_by("order"))
            missing = [s.order for s in scenes if s.status != Scene.Status.READY]
            if not scenes or missing:
                raise ConflictError(
                    "Cannot generate frames: the project has no scenes yet."
                    if not scenes
                    else f"Cannot generate frames: scene(s) {missing} have no content yet."
                )
            if busy or active(project.jobs.filter(type=Job.Type.FRAMES, parent=None)):
                raise ConflictError("Frame generation is already queued or running.")
            admit_start(
                project, Job.Type.FRAMES, Job.TargetType.PROJECT, project.pk,
                what="frame generation",
            )  # fmt: skip
            job = _project_job(project, Job.Type.FRAMES, container=True)
            for s in scenes:
                _frames_job(project, s, parent=job)
        show_stage(project, Job.Type.FRAMES)
    return job


def storyboard_checkpoint(project: Project) -> bool:
    return "storyboard" in (project.checkpoints or [])


def keyframes_problem(project: Project) -> str | None:
    """Why the storyboard is not complete yet (every scene drawn, nothing still drawing)."""
    frames = Frame.objects.filter(scene__project=project)
    total = frames.count()
    if not total:
        return "the project has no keyframes yet."
    missing = frames.filter(image="").count()
    if missing:
        return f"{missing} of {total} keyframes are not ready."
    undrawn = list(project.scenes.filter(frames__isnull=True).values_list("order", flat=True))
    if undrawn:
        return f"scene(s) {sorted(undrawn)} have no keyframes yet."
    if active(project.jobs.filter(type=Job.Type.FRAMES)):
        return "keyframes are still being generated."
    return None


def _await_storyboard_approval(project: Project) -> None:
    if keyframes_problem(project) is None:
        logger.info("storyboard of project %s is ready: waiting for approval", project.pk)
        set_status(project, Project.Status.AWAITING_STORYBOARD_APPROVAL)


# A finished film, or one waiting on its storyboard: redoing one unit leaves the status alone
# (its dependents become stale); a failed or cancelled pipeline picks up again instead.
KEEPS_STATUS = (Project.Status.COMPLETE, Project.Status.AWAITING_STORYBOARD_APPROVAL)


def status_while_running(job: Job, project: Project) -> str:
    """The project's status while `job` runs, or "" to leave it: unit redos (portrait,
    keyframe) never move it, nor does a job on one unit of a finished film."""
    status = job_type(job.type).project_status
    if job.target_type != Job.TargetType.PROJECT and project.status in KEEPS_STATUS:
        return ""
    return status


def start_video_generation(
    *, project: Project, frame: Frame | None = None, instructions: str = ""
) -> Job:
    """Every frame's clip (a parent job), or one `frame`'s. Every frame's is refused while the
    project awaits its storyboard's approval: that approval starts them
    (`start_approved_video_generation`); one frame's clip may be tried before it."""
    return _start_videos(project, frame, instructions)


def start_approved_video_generation(*, project: Project) -> Job:
    """(`storyboard_approve`, project row locked, its checks made.) Every frame's clip."""
    return _start_videos(project, None, "", storyboard_approved=True)


def _start_videos(
    project: Project, frame: Frame | None, instructions: str, *, storyboard_approved: bool = False
) -> Job:
    with transaction.atomic():
        project = lock_project(project)
        if (
            frame is None
            and not storyboard_approved
            and project.status == Project.Status.AWAITING_STORYBOARD_APPROVAL
        ):
            raise ConflictError(
                "The storyboard awaits approval: approving it starts the clips "
                f"(POST /api/projects/{project.pk}/storyboard/approve)."
            )
        busy = busy_targets(project, [Job.Type.VIDEOS], Job.TargetType.FRAME)
        if frame is not None:
            frame = Frame.objects.select_related("scene").get(pk=frame.pk)  # as it is now
            if not frame.image:
                raise ConflictError(f"Frame {frame.pk} has no keyframe yet.")
            if frame.pk in busy:
                raise ConflictError(f"A clip of frame {frame.pk} is already being generated.")
            refuse_while_busy(
                project, f"frame {frame.pk}'s clip", scene_id=frame.scene_id, frame_id=frame.pk
            )
            admit_start(
                project, Job.Type.VIDEOS, Job.TargetType.FRAME, frame.pk,
                what=f"frame {frame.pk}'s clip",
            )  # fmt: skip
            job = _video_job(project, frame, instructions=instructions)
            if not status_while_running(job, project):
                return job  # one clip redone: the film becomes stale, the project stays
        else:
            frames = list(
                Frame.objects.filter(scene__project=project).order_by("scene__order", "order")
            )
            missing = [f.pk for f in frames if not f.image]
            if not frames or missing:
                raise ConflictError(
                    "Cannot generate videos: the project has no frames yet."
                    if not frames
                    else f"Cannot generate videos: frame(s) {missing} have no keyframe yet."
                )
            if busy:
                raise ConflictError("Video generation is already queued or running.")
            admit_start(
                project, Job.Type.VIDEOS, Job.TargetType.PROJECT, project.pk,
                what="video generation",
            )  # fmt: skip
            job = _project_job(project, Job.Type.VIDEOS, container=True)
            with queue.batched():  # submitted a few per worker job, side by side
                for f in frames:
                    _video_job(project, f, parent=job)
        show_stage(project, Job.Type.VIDEOS)
    return job


# --- the film ------------------------------------------------------------------------------


def _where(frame: Frame) -> str:
    return f"scene {frame.scene.order} shot {frame.order}"


def cut_problem(project: Project, frames: list[Frame] | None = None) -> str | None:
    """What is missing for a finished cut to export (the current clip of every shot and the
    film cut from them), or None. `frames` in film order with their scene and video."""
    if frames is None:
        frames = list(
            Frame.objects.filter(scene__project=project)
            .select_related("scene", "video")
            .order_by("scene__order", "order")
        )
    if not frames:
        return "the project has no shots yet."
    missing = [f for f in frames if not (v := getattr(f, "video", None)) or not v.take_id]
    if missing:
        named = ", ".join(_where(f) for f in missing[:5]) + (", ..." if len(missing) > 5 else "")
        return f"{len(missing)} of {len(frames)} shots have no clip yet ({named})."
    if project.film_take_id is None:
        return "the film has not been cut yet: stitch it first (POST /api/jobs/video-stitching)."
    return None


def stitch_problem(project: Project) -> str | None:
    # One statement: every clip delivered asks it, under the project's row lock.
    counts = Frame.objects.filter(scene__project=project).aggregate(
        total=Count("id"), ready=Count("id", filter=Q(video__status=Video.Status.READY))
    )
    total, ready = counts["total"], counts["ready"]
    if not total:
        return "the project has no frames yet."
    if ready < total:
        return f"{total - ready} of {total} clips are not ready."
    if active(project.jobs.filter(type=Job.Type.AUDIO)):
        return "lines are still being spoken."
    return None


# --- spoken lines --------------------------------------------------------------------------


def _has_dialogue(frames) -> bool:
    return frames.exclude(dialogue="").exists()


def lines_job(project: Project, target_type: str, target_id: int) -> Job:
    return job_create(
        project=project, type=Job.Type.AUDIO, target_type=target_type, target_id=target_id
    )


def start_audio_generation(*, project: Project, frame: Frame | None = None) -> Job:
    """Speak the dialogue: one frame's line again, or every line that is missing or stale."""
    with transaction.atomic():
        project = lock_project(project)
        running = busy_targets(project, [Job.Type.AUDIO], Job.TargetType.PROJECT)
        if frame is not None:
            frame = Frame.objects.select_related("scene").get(pk=frame.pk)  # as it is now
            if not frame.dialogue.strip():
                raise ConflictError(f"Frame {frame.pk} has no dialogue to speak.")
            if running:  # the project's job speaks this line too: it would be spoken twice
                raise ConflictError(
                    f"Cannot speak frame {frame.pk}'s line while the lines of this project are "
                    "being spoken; cancel that job or wait for it to finish."
                )
            refuse_while_busy(
                project, f"frame {frame.pk}'s line", scene_id=frame.scene_id, frame_id=frame.pk
            )
            target_type, target_id, what = (
                Job.TargetType.FRAME,
                frame.pk,
                f"frame {frame.pk}'s line",
            )
        else:
            if not _has_dialogue(Frame.objects.filter(scene__project=project)):
                raise ConflictError("No frame of this project has dialogue to speak.")
            if running or active(project.jobs.filter(type=Job.Type.AUDIO)):
                raise ConflictError("Lines of this project are already being spoken.")
            frames = with_line_inputs(Frame.objects.filter(scene__project=project))
            if not wanted_lines(frames):  # the job would start and speak nothing
                raise ConflictError("Nothing to speak: every line is spoken and up to date.")
            target_type, target_id, what = Job.TargetType.PROJECT, project.pk, "the lines"
        admit_start(project, Job.Type.AUDIO, target_type, target_id, what=what)
        return lines_job(project, target_type, target_id)


def speak_scene(project: Project, scene_id: int) -> None:
    """The pipeline's lines of one scene, beside its clips."""
    if _has_dialogue(Frame.objects.filter(scene_id=scene_id)):
        lines_job(project, Job.TargetType.SCENE, scene_id)


def speak_project(project: Project) -> None:
    if _has_dialogue(Frame.objects.filter(scene__project=project)) and not active(
        project.jobs.filter(type=Job.Type.AUDIO)
    ):
        lines_job(project, Job.TargetType.PROJECT, project.pk)


def start_stitching(*, project: Project) -> Job:
    with transaction.atomic():
        project = lock_project(project)
        problem = stitch_problem(project)
        if problem:
            raise ConflictError(f"Cannot stitch: {problem}")
        if active(project.jobs.filter(type=Job.Type.STITCH)):
            raise ConflictError("Stitching is already queued or running.")
        admit_start(project, Job.Type.STITCH, Job.TargetType.PROJECT, project.pk, what="stitching")
        return _start_stage(project, Job.Type.STITCH)


# --- the hand-off to an editor -------------------------------------------------------------


def start_export(*, project: Project) -> Job:
    """The hand-off zip, built by a job (it holds every clip: too big for a request)."""
    with transaction.atomic():
        project = lock_project(project)
        problem = cut_problem(project)
        if problem:
            raise ConflictError(f"Cannot export: {problem}")
        running = project.jobs.filter(type=Job.Type.EXPORT, status__in=Job.ACTIVE).first()
        if running is not None:
            raise ConflictError(
                f"An export of this project is already {running.status} (job #{running.pk})."
            )
        return _project_job(project, Job.Type.EXPORT)


# --- retries (the `retry_check` of each job type; project row locked) ---------------------
# A retry answers to the checks its start does: retrying a cancelled cast job once scenes
# existed added characters nobody could decide any more, and the project stuck.


def _refuse_twin(job: Job, what: str) -> None:
    """Another active job does the same work (same type and unit, or a whole-project container
    beside its kind's): the retry would do it twice."""
    twins = Job.objects.filter(project_id=job.project_id, type=job.type, status__in=Job.ACTIVE)
    twins = twins.exclude(pk=job.pk).exclude(parent_id=job.pk)
    if job.target_type != Job.TargetType.PROJECT:
        twins = twins.filter(target_type=job.target_type, target_id=job.target_id)
    twin = twins.order_by("pk").first()
    if twin is not None:
        raise ConflictError(f"{what} is {twin.status} in job #{twin.pk}: retry once it ends.")


def retry_unless_twin(job: Job, project: Project) -> None:
    _refuse_twin(job, f"The same {job.type}")


def retry_characters(job: Job, project: Project) -> None:
    if scene_generation_started(project):
        raise ConflictError("Scene generation has started: the cast can no longer change.")
    _refuse_twin(job, "Character generation")


def retry_scenes(job: Job, project: Project) -> None:
    problem = cast_problem(project)
    if problem:
        raise ConflictError(f"Cannot generate scenes: {problem}")
    _refuse_twin(job, "Scene generation")


def _unit(model, job: Job, what: str):
    unit = model.objects.filter(pk=job.target_id).first()
    if unit is None:
        raise ConflictError(f"{what} {job.target_id} no longer exists: nothing to retry.")
    return unit


def retry_frames(job: Job, project: Project) -> None:
    if job.target_type == Job.TargetType.SCENE:
        scene = _unit(Scene, job, "Scene")
        refuse_while_busy(project, f"scene {scene.order}'s frames", scene_id=scene.pk)
    elif not project.scenes.exists():
        raise ConflictError("Cannot generate frames: the project has no scenes yet.")
    _refuse_twin(job, "Frame generation")


def retry_videos(job: Job, project: Project) -> None:
    if job.target_type == Job.TargetType.FRAME:
        frame = _unit(Frame, job, "Frame")
        if not frame.image:
            raise ConflictError(f"Frame {frame.pk} has no keyframe yet.")
        refuse_while_busy(
            project, f"frame {frame.pk}'s clip", scene_id=frame.scene_id, frame_id=frame.pk
        )
    else:
        missing = Frame.objects.filter(scene__project=project, image="").count()
        if missing:
            raise ConflictError(f"Cannot generate videos: {missing} frame(s) have no keyframe.")
    _refuse_twin(job, "Video generation")


def retry_stitch(job: Job, project: Project) -> None:
    problem = stitch_problem(project)
    if problem:
        raise ConflictError(f"Cannot stitch: {problem}")
    _refuse_twin(job, "Stitching")


def retry_portrait(job: Job, project: Project) -> None:
    character = _unit(Character, job, "Character")
    if character.status in (Character.Status.GENERATING, Character.Status.REJECTED):
        raise ConflictError(f"This character is {character.status}: no portrait to redo.")
    refuse_while_busy(project, f"the portrait of {character.name}", character_id=character.pk)


def retry_keyframe(job: Job, project: Project) -> None:
    frame = _unit(Frame, job, "Frame")
    if not frame.prompt:
        raise ConflictError(f"Frame {frame.pk} has no shot text yet.")
    refuse_while_busy(
        project, f"frame {frame.pk}'s keyframe", scene_id=frame.scene_id, frame_id=frame.pk
    )


def retry_image_edit(job: Job, project: Project) -> None:
    _edited_unit(project, job.target_type, job.target_id)


def retry_reference(job: Job, project: Project) -> None:
    obj = _unit(ProjectObject, job, "Object")
    refuse_while_busy(project, f"the reference image of {obj.name}", object_id=obj.pk)


def retry_refresh(job: Job, project: Project) -> None:
    _refuse_twin(job, "A refresh of this project")
    others = project.jobs.filter(status__in=Job.ACTIVE).exclude(pk=job.pk).exclude(parent=job)
    if others.exists():
        raise ConflictError("Jobs of this project are still running; refresh once they end.")


def retry_export(job: Job, project: Project) -> None:
    problem = cut_problem(project)
    if problem:
        raise ConflictError(f"Cannot export: {problem}")
    _refuse_twin(job, "An export of this project")


# --- successors (the `after` of each job type; project row locked) -------------------------


def after_characters(job: Job, project: Project) -> None:
    if project.status == Project.Status.GENERATING_CHARACTERS:
        set_status(project, Project.Status.AWAITING_APPROVAL)
    cast_decided(project=project)


def after_scenes(job: Job, project: Project) -> None:
    for scene in project.scenes.order_by("order"):
        _frames_job(project, scene)
    show_stage(project, Job.Type.FRAMES)


def after_frames(job: Job, project: Project) -> None:
    if storyboard_checkpoint(project):
        # No clip is paid for before the producer approves the storyboard; the last scene's
        # keyframes (under the project's row lock) put the project in front of them.
        _await_storyboard_approval(project)
        return
    with queue.batched():
        for frame in Frame.objects.filter(scene_id=job.target_id).order_by("order"):
            _video_job(project, frame)
    speak_scene(project, job.target_id)
    show_stage(project, Job.Type.VIDEOS)


def after_video(job: Job, project: Project) -> None:
    # Fan-in under the project's row lock: however many clips finish at once, the last one
    # sees every clip ready and no stitch job active, and exactly one stitch starts. Only while
    # the pipeline makes the clips: one clip redone in a finished film makes the film stale,
    # it does not re-cut it by itself.
    if project.status != Project.Status.GENERATING_VIDEOS:
        return
    if stitch_problem(project) is None and not active(project.jobs.filter(type=Job.Type.STITCH)):
        _start_stage(project, Job.Type.STITCH)


def after_lines(job: Job, project: Project) -> None:
    """Lines spoken: the film is cut once the clips are ready too (the same fan-in)."""
    after_video(job, project)


def after_unit(job: Job, project: Project) -> None:
    """One unit redone (a portrait, a keyframe): nothing downstream runs by itself; what
    depended on it is now stale (`GET /api/projects/{id}/stale`)."""


def after_stitch(job: Job, project: Project) -> None:
    set_status(project, Project.Status.COMPLETE)


def after_export(job: Job, project: Project) -> None:
    """The zip is stored (`result.file`); nothing follows it."""


# --- failure marking (the `mark_failed` of each job type) ----------------------------------


def characters_failed(job: Job) -> None:
    Character.objects.filter(source_job_id=job.pk, status=Character.Status.GENERATING).update(
        status=Character.Status.FAILED
    )


def scenes_failed(job: Job) -> None:
    job.project.scenes.filter(status=Scene.Status.GENERATING).update(status=Scene.Status.FAILED)


def frames_failed(job: Job) -> None:
    Scene.objects.filter(pk=job.target_id).update(status=Scene.Status.FAILED)
    Frame.objects.filter(scene_id=job.target_id).exclude(status=Frame.Status.READY).update(
        status=Frame.Status.FAILED
    )


def video_failed(job: Job) -> None:
    """A clip that has a current take keeps it (and stays ready); one that has none failed."""
    Video.objects.filter(frame_id=job.target_id, take__isnull=True).exclude(
        status=Video.Status.READY
    ).update(status=Video.Status.FAILED)


def nothing_to_mark(job: Job) -> None:
    """The stitch keeps the previous film; nothing of the hierarchy failed."""


# --- progress ------------------------------------------------------------------------------

# Share of the whole pipeline each stage stands for (sums to 100).
WEIGHTS = {"cast": 10, "gate": 5, "scenes": 10, "frames": 20, "videos": 45, "film": 10}


@dataclass(frozen=True)
class Standing:
    """Where a project stands, read with its row lock in one statement (`project_standing`)."""

    project: Project  # the row, locked
    progress: int  # how far the whole pipeline has come, 0-100 (WEIGHTS)
    busy: bool  # pipeline work is active (`project_has_active_jobs`)
    failed: bool  # a job of the project failed


def _count(table: str, where: str, join: str = "") -> str:
    return f"(SELECT COUNT(*) FROM {table} {join} WHERE {where})"


_CHARACTER, _SCENE = Character._meta.db_table, Scene._meta.db_table
_FRAME, _VIDEO, _JOB = Frame._meta.db_table, Video._meta.db_table, Job._meta.db_table
_SHOTS = f"JOIN {_SCENE} AS s ON s.id = f.scene_id"
_STANDING = f"""
SELECT {columns(Project, "p")},
    {_count(f"{_CHARACTER} AS c", "c.project_id = p.id")},
    {_count(f"{_CHARACTER} AS c", "c.project_id = p.id AND c.status <> %(generating)s")},
    {_count(f"{_SCENE} AS s", "s.project_id = p.id AND s.status = %(scene_ready)s")},
    {_count(f"{_FRAME} AS f", "s.project_id = p.id AND f.status = %(frame_ready)s", _SHOTS)},
    {_count(f"{_FRAME} AS f", "s.project_id = p.id AND v.status = %(clip_ready)s",
            f"{_SHOTS} JOIN {_VIDEO} AS v ON v.frame_id = f.id")},
    EXISTS (SELECT 1 FROM {_SCENE} AS s WHERE s.project_id = p.id)
        OR EXISTS (SELECT 1 FROM {_JOB} AS j WHERE j.project_id = p.id
                   AND j.type = %(scenes)s AND j.status <> %(cancelled)s),
    EXISTS (SELECT 1 FROM {_JOB} AS j WHERE j.project_id = p.id
            AND j.status = ANY(%(active)s) AND NOT j.type = ANY(%(waiters)s)),
    EXISTS (SELECT 1 FROM {_JOB} AS j WHERE j.project_id = p.id AND j.status = %(failed)s)
FROM {Project._meta.db_table} AS p WHERE p.id = %(project)s
"""  # fmt: skip


def project_standing(project_id: int) -> Standing:
    """The project's row, locked, and its progress and job state, in one read (the figures of
    `scene_generation_started`, `project_has_active_jobs` and the stages' counts: nine
    statements before). The lock is taken first, by a statement of its own unless this
    transaction holds it already: a read that waited for it would see the other rows as they
    were before the wait (READ COMMITTED)."""
    hold_project_lock(project_id)
    params: dict[str, Any] = {
        "project": project_id,
        "generating": Character.Status.GENERATING,
        "scene_ready": Scene.Status.READY,
        "frame_ready": Frame.Status.READY,
        "clip_ready": Video.Status.READY,
        "scenes": Job.Type.SCENES,
        "cancelled": Job.Status.CANCELLED,
        "active": list(Job.ACTIVE),
        "waiters": project_waiter_types(),
        "failed": Job.Status.FAILED,
    }
    with connection.cursor() as cursor:
        cursor.execute(_STANDING, params)
        row = cursor.fetchone()
    if row is None:
        raise Project.DoesNotExist(f"project {project_id} does not exist")
    split = len(Project._meta.concrete_fields)
    project = instance_from(Project, row[:split])
    cast, settled, scenes_ready, frames_ready, clips, gate, busy, failed = row[split:]
    expected_frames = max(1, project.num_scenes * project.frames_per_scene)
    score = 0.0
    if cast:
        score += WEIGHTS["cast"] * settled / cast
    if gate:
        score += WEIGHTS["gate"]
    score += WEIGHTS["scenes"] * min(1, scenes_ready / max(1, project.num_scenes))
    score += WEIGHTS["frames"] * min(1, frames_ready / expected_frames)
    score += WEIGHTS["videos"] * min(1, clips / expected_frames)
    if project.status == Project.Status.COMPLETE and project.final_video:
        score += WEIGHTS["film"]
    return Standing(project, max(0, min(100, round(score))), busy, failed)
