"""Live job events, on the project's channel beside its entities' (`projects.events`)."""

from generation.models import GenerationJob
from media.signing import blob_url
from projects.events import project_channel, publish, publish_entity

__all__ = ["job_payload", "project_channel", "publish_entity", "publish_job"]


def _iso(value) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def _result(result: dict | None) -> dict | None:
    """A result that names a stored file (`file`) gets its signed `url`, fresh at each read."""
    if not isinstance(result, dict) or "file" not in result:
        return result
    return {**result, "url": blob_url(result["file"])}


def job_payload(job: GenerationJob) -> dict:
    """The job's JSON, as the contract gives it (the API serializer returns this too)."""
    return {
        "id": job.pk,
        "type": job.type,
        "status": job.status,
        "progress": job.progress,
        "attempts": job.attempts,
        "error": job.error,
        "project_id": job.project_id,
        "target": {"type": job.target_type, "id": job.target_id},
        "parent_id": job.parent_id,
        "result": _result(job.result),
        "provider_request_ids": job.provider_request_ids,
        "created_at": _iso(job.created_at),
        "started_at": _iso(job.started_at),
        "finished_at": _iso(job.finished_at),
    }


def publish_job(job: GenerationJob) -> None:
    publish(job.project_id, "job", job_payload(job))
