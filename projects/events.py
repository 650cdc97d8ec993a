"""Live events of the creative hierarchy: every change goes to its project's eventstream channel.

Events are sent after the transaction commits (never for rolled-back changes), through Redis at
once so events from worker processes reach the web process, and kept for Last-Event-ID replay
(in Redis, and in the database in one write per step: `filmstudio.eventstore`).
"""

import logging

from django.db import transaction

from filmstudio.eventstore import send_event
from media.signing import blob_url
from projects.models import Character, Frame, Project, ProjectObject, Scene, Video

logger = logging.getLogger(__name__)


def project_channel(project_id: int) -> str:
    return f"project-{project_id}"


def may_read_project_channel(user, project_id: int) -> bool:
    # Staff watch every project from the dashboards; the public API's view checks ownership
    # itself before it hands over, so staff get no more there.
    return user.is_staff or Project.objects.filter(pk=project_id, owner=user).exists()


def _send(channel: str, event_type: str, data: dict) -> None:
    try:
        send_event(channel, event_type, data)
    except Exception:  # live events are best effort: never fail the change that caused them
        logger.exception("could not send %s event on %s", event_type, channel)


def publish(project_id: int, event_type: str, data: dict) -> None:
    channel = project_channel(project_id)
    transaction.on_commit(lambda: _send(channel, event_type, data))


def entity_payload(instance) -> tuple[str, dict]:
    """(event type, flat JSON) with project_id and the parent's id, as the contract says."""
    if isinstance(instance, Project):
        return "project", {
            "id": instance.pk,
            "project_id": instance.pk,
            "title": instance.title,
            "status": instance.status,
            "progress": instance.progress,
            "final_video_url": blob_url(instance.final_video),
            "final_duration": instance.final_duration,
        }
    if isinstance(instance, Character):
        return "character", {
            "id": instance.pk,
            "project_id": instance.project_id,
            "name": instance.name,
            "role": instance.role,
            "description": instance.description,
            "status": instance.status,
            "image_url": blob_url(instance.image),
        }
    if isinstance(instance, Scene):
        return "scene", {
            "id": instance.pk,
            "project_id": instance.project_id,
            "order": instance.order,
            "title": instance.title,
            "concise_plot": instance.concise_plot,
            "status": instance.status,
        }
    if isinstance(instance, Frame):
        return "frame", {
            "id": instance.pk,
            "project_id": instance.scene.project_id,
            "scene_id": instance.scene_id,
            "order": instance.order,
            "prompt": instance.prompt,
            "status": instance.status,
            "image_url": blob_url(instance.image),
        }
    if isinstance(instance, Video):
        return "video", {
            "id": instance.pk,
            "project_id": instance.frame.scene.project_id,
            "scene_id": instance.frame.scene_id,
            "frame_id": instance.frame_id,
            "status": instance.status,
            "video_url": blob_url(instance.file),
            "duration": instance.duration,
        }
    if isinstance(instance, ProjectObject):
        return "object", {
            "id": instance.pk,
            "project_id": instance.project_id,
            "name": instance.name,
            "description": instance.description,
            "image_url": blob_url(instance.image),
        }
    raise TypeError(f"no event for {type(instance).__name__}")


def publish_entity(instance) -> None:
    event_type, data = entity_payload(instance)
    publish(data["project_id"], event_type, data)
