"""Image-to-video for one frame. The worker submits and leaves: a scheduled poll (or fal's
webhook) comes back for the clip, so no worker waits on a remote job."""

import hashlib
import tempfile
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.urls import reverse

from generation import costs, queue, services, usage
from generation.jobs import lock_if_active
from generation.models import GenerationJob
from generation.prompts import video_prompt
from generation.providers import billed_seconds, video_provider
from generation.providers.base import PermanentProviderError
from generation.steps.common import (
    UnitVanished,
    delete_after_commit,
    film_format,
    read_media,
    record_take,
    store_file,
)
from media import ffmpeg
from projects.models import Frame, Take, Video
from projects.takes import clip_inputs

Job = GenerationJob


def _frame(job: GenerationJob) -> Frame:
    frame = Frame.objects.select_related("scene__project").filter(pk=job.target_id).first()
    if frame is None:
        raise UnitVanished(f"frame {job.target_id} no longer exists")
    return frame


def webhook_url() -> str | None:
    if not settings.PUBLIC_BASE_URL:
        return None
    return settings.PUBLIC_BASE_URL + reverse("fal-webhook")


def run(job: GenerationJob) -> None:
    frame = _frame(job)
    if not frame.image:
        raise PermanentProviderError(f"Frame {frame.pk} has no keyframe.")
    video, _ = Video.objects.get_or_create(frame=frame)
    video.frame = frame  # loaded with its scene and project (the video's event names them)
    # A clip redone keeps its current take on show (and ready for a cut) until the new one lands.
    if video.status != Video.Status.GENERATING and not video.take_id:
        video.status = Video.Status.GENERATING
        video.save(update_fields=["status", "updated_at"])
        services.publish_entity(video)
    provider = video_provider()
    if job.provider_request_ids:
        # A re-run after a crash: the remote job was already paid for; follow it up.
        if not services.job_wait(job, request_id=job.provider_request_ids[-1]):
            return
    else:
        # What the clip is made from, as it is now: an edit during the render makes it stale.
        prompt = video_prompt(frame, job.params.get("instructions", ""))
        # What the video service bills for this clip, recorded when it is delivered.
        made_from = {
            "prompt": prompt,
            "inputs": clip_inputs(frame),
            "billed_seconds": billed_seconds(frame.duration),
        }
        request_id = provider.submit(
            image=read_media(frame.image),
            prompt=prompt,
            duration=frame.duration,
            aspect_ratio=frame.scene.project.aspect_ratio,
            seed=frame.pk,
            webhook_url=webhook_url(),
        )
        if not services.job_wait(job, request_id=request_id, params=made_from):
            # Cancelled while submitting: the cancel did not know this request; stop it at fal.
            queue.cancel_remote([request_id])
            return
        if not provider.instant:
            # Just submitted: not done yet. The poller looks (its status right now would be
            # one more call per clip, in the way of the other submissions).
            services.job_poll_later(job)
            return
    poll(job)


def poll(job: GenerationJob, *, completed: bool = False) -> None:
    """One look at the remote job: deliver, fail, or come back later. `completed`: the
    provider was just seen to have finished it (`tasks.poll_waiting`)."""
    result = video_provider().poll(job.provider_request_ids[-1], completed=completed)
    if result.status == "pending":
        if result.progress is not None:
            services.job_progress(job, min(90, result.progress))
        services.job_poll_later(job)
    elif result.status == "failed":
        raise PermanentProviderError(result.error or "the video provider reported a failure")
    else:
        deliver(job, result.video or b"")


def deliver(job: GenerationJob, data: bytes) -> bool:
    """Normalize the clip to the film's format and exact duration, store it, finish the job."""
    frame = _frame(job)
    fmt = film_format(frame.scene.project)
    with tempfile.TemporaryDirectory() as tmp:
        raw, clip = Path(tmp) / "raw.mp4", Path(tmp) / f"frame-{frame.pk}.mp4"
        raw.write_bytes(data)
        # Read as MP4 only, what every video provider delivers: nothing else is tried on it.
        info = ffmpeg.normalize_clip(
            raw,
            clip,
            fmt=fmt,
            duration=frame.duration,
            timeout=settings.FFMPEG_TIMEOUT,
            input_format="mp4",
        )
        name = store_file(frame.scene.project_id, "videos", f"frame-{frame.pk}", clip)
    provider = video_provider()
    seconds = float(job.params.get("billed_seconds") or billed_seconds(frame.duration))
    # One remote request is one bill, however many times its clip is delivered.
    request_id = job.provider_request_ids[-1] if job.provider_request_ids else f"job-{job.pk}"
    call_id = hashlib.md5(f"{provider.name}:{request_id}".encode()).hexdigest()
    parts = {"video_second": seconds}
    usage.report(
        usage.Usage(provider.name, provider.model, seconds, "video_second", parts, call_id)
    )
    with transaction.atomic():
        active = lock_if_active(job)  # a cancel takes the lock too: the answer holds
        video = Video.objects.select_for_update().filter(frame_id=frame.pk).first()
        if video is None or not active:
            costs.record_unit(Job.TargetType.FRAME, frame.pk)  # made and billed all the same
            delete_after_commit(name)  # cancelled or replaced meanwhile, or delivered twice
            if video is None:  # the clip's row is gone: this job has nothing left to do
                services.job_end_quietly(job, f"the clip of frame {frame.pk} no longer exists")
            return False
        take = record_take(
            job,
            provider,
            (Job.TargetType.FRAME, frame.pk),
            kind=Take.Kind.CLIP,
            frame=frame,
            file=name,
            duration=info.duration,
            # Recorded at submit (`run`); computed now only for a job submitted before that.
            inputs=job.params.get("inputs") or clip_inputs(frame),
            prompt=job.params.get("prompt") or video_prompt(frame),
            instructions=job.params.get("instructions", ""),
            seed=frame.pk,
        )
        result = {"video_id": video.pk, "take_id": take.pk, "duration": info.duration}
        return services.job_succeed(job, result)
