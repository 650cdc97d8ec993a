"""Reads of director sessions, owner-scoped like every other `*_for_user` selector."""

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from director.models import AgentRun, AgentRunEvent, DirectorMessage, DirectorSession, DirectorTurn
from generation.models import GenerationJob
from generation.selectors import jobs_for_user
from projects import selectors as project_selectors
from projects.models import Character, Frame, Project, Scene, Take, Video


def sessions_for_user(user) -> QuerySet[DirectorSession]:
    if not user.is_authenticated:
        return DirectorSession.objects.none()
    return DirectorSession.objects.filter(user=user)


def session_for_user(user, session_id: int) -> DirectorSession:
    return get_object_or_404(sessions_for_user(user), pk=session_id)


def may_read_session_channel(user, session_id: int) -> bool:
    return DirectorSession.objects.filter(pk=session_id, user=user).exists()


def runs_for_user(user) -> QuerySet[AgentRun]:
    if not user.is_authenticated:
        return AgentRun.objects.none()
    return AgentRun.objects.filter(user=user, project__owner=user).select_related("project")


def run_for_user(user, run_id: int) -> AgentRun:
    return get_object_or_404(runs_for_user(user), pk=run_id)


def may_read_run_channel(user, run_id: int) -> bool:
    return runs_for_user(user).filter(pk=run_id).exists()


def run_events(run: AgentRun, *, last: int = 200) -> list[AgentRunEvent]:
    """The run's latest `last` events, oldest first (its log)."""
    return list(reversed(run.events.order_by("-pk")[:last]))


def session_history(session: DirectorSession, *, before: DirectorTurn, turns: int) -> list:
    """The messages of the session's last `turns` turns before `before`, oldest first.

    Whole turns only: a model must never see a tool result without the call it answers.
    """
    if turns <= 0:
        return []
    turn_ids = list(
        session.turns.filter(pk__lt=before.pk).order_by("-pk").values_list("pk", flat=True)[:turns]
    )
    return list(DirectorMessage.objects.filter(turn_id__in=turn_ids).order_by("pk"))


def job_brief(job: GenerationJob) -> dict:
    return {
        "id": job.pk,
        "type": job.type,
        "status": job.status,
        "target": {"type": job.target_type, "id": job.target_id},
        "error": job.error[:300],
    }


def character_brief(character: Character) -> dict:
    return {
        "id": character.pk,
        "name": character.name,
        "role": character.role,
        "status": character.status,
    }


def scene_brief(scene: Scene) -> dict:
    return {
        "id": scene.pk,
        "order": scene.order,
        "title": scene.title,
        "mood": scene.mood,
        "location": scene.location,
    }


def frame_brief(frame: Frame) -> dict:
    return {
        "id": frame.pk,
        "order": frame.order,
        "scene_id": frame.scene_id,
        "prompt": frame.prompt[:300],
        "camera": frame.camera,
        "dialogue": frame.dialogue[:300],
        "speaker_id": frame.speaker_id,
    }


def take_brief(take: Take, *, current: bool) -> dict:
    return {
        "id": take.pk,
        "kind": take.kind,
        "current": current,
        "instructions": take.instructions[:300],
        "created_at": take.created_at.isoformat(),
    }


def _next_step(project: Project) -> str:
    status = Project.Status
    hints: dict[str, str] = {
        status.DRAFT: "Generate the characters (start_generation kind=characters).",
        status.GENERATING_CHARACTERS: "Wait for the characters to be generated.",
        status.AWAITING_APPROVAL: "Approve or reject each pending character; scene generation "
        "starts by itself once every character is decided and one is approved.",
        status.GENERATING_SCENES: "Wait for the scenes to be written.",
        status.GENERATING_FRAMES: "Wait for the keyframes.",
        status.GENERATING_VIDEOS: "Wait for the clips.",
        status.STITCHING: "Wait for the final film to be stitched.",
        status.AWAITING_STORYBOARD_APPROVAL: "Check the keyframes, then approve the storyboard "
        "(approve_storyboard) to make the clips.",
        status.COMPLETE: "The film is finished: watch it on the videos page.",
        status.FAILED: "A job failed: retry it (retry_job) or start that step again.",
        status.CANCELLED: "Generation was cancelled: start the step again when ready.",
    }
    return hints.get(project.status, "")


def project_summary(user, project_id: int) -> dict:
    """A project's state, compact enough to hand to a model (get_project_status)."""
    project = project_selectors.project_hierarchy(project_selectors.projects_for_user(user)).get(
        pk=project_id
    )
    scenes = []
    for scene in project.scenes.all():
        frames = list(scene.frames.all())
        # The reverse one-to-one raises when a frame has no video yet: getattr's default covers it.
        videos = [getattr(f, "video", None) for f in frames]
        clips = [v for v in videos if v is not None and v.status == Video.Status.READY]
        scenes.append(
            {
                "id": scene.pk,
                "order": scene.order,
                "title": scene.title,
                "status": scene.status,
                "frames": len(frames),
                "frame_ids": [f.pk for f in frames],
                "frames_ready": sum(1 for f in frames if f.image),
                "clips_ready": len(clips),
            }
        )
    jobs = jobs_for_user(user).filter(project=project, parent=None)
    return {
        "project": {
            "id": project.pk,
            "title": project.title,
            "logline": project.logline,
            "status": project.status,
            "progress": project.progress,
            "num_scenes": project.num_scenes,
            "frames_per_scene": project.frames_per_scene,
            "clip_seconds": project.clip_seconds,
            "aspect_ratio": project.aspect_ratio,
            "has_final_film": bool(project.final_video),
        },
        "characters": [character_brief(c) for c in project.characters.all()],
        "scenes": scenes,
        "recent_jobs": [job_brief(job) for job in jobs.order_by("-created_at", "-id")[:6]],
        "next_step": _next_step(project),
    }
