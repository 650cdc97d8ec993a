"""The clip poller: one round looks at every clip in flight at fal; the finished ones go to
the workers a few per RQ job, and while clips finish the next round comes at once."""

from datetime import timedelta

import django_rq
import pytest
from django.utils import timezone

from generation import services, tasks
from generation.models import GenerationJob
from generation.providers.fal import FalVideo
from generation.steps.common import store_bytes
from tests.factories import FrameFactory, JobFactory, ProjectFactory, SceneFactory
from tests.fakes.gemini_server import tiny_png
from tests.pipeline import drain

pytestmark = pytest.mark.django_db(transaction=True)
Job = GenerationJob


@pytest.fixture
def rq_queue(fal):
    queue = django_rq.get_queue("default")
    queue.connection.flushdb()
    return queue


def clip_in_flight(project, fal, *, seconds: float) -> Job:
    """A clip job waiting on a request at the fake fal that runs `seconds`."""
    fal.latency["run"] = seconds
    request_id = FalVideo().submit(
        image=tiny_png("16:9"), prompt="a shot", duration=2, aspect_ratio="16:9", seed=1
    )
    return JobFactory(
        project=project,
        type=Job.Type.VIDEOS,
        target_type=Job.TargetType.FRAME,
        target_id=1,
        status=Job.Status.WAITING,
        provider_request_ids=[request_id],
        heartbeat_at=timezone.now() - timedelta(hours=1),  # due for a look
    )


def test_finished_clips_are_handed_over_and_the_next_round_comes_at_once(user, fal, rq_queue):
    project = ProjectFactory(owner=user)
    done = [clip_in_flight(project, fal, seconds=0) for _ in range(2)]
    running = clip_in_flight(project, fal, seconds=600)
    tasks.poll_waiting()
    jobs = {job.func_name: job for job in rq_queue.jobs}
    # Seen finished: delivered without a second status call (`deliver_videos`).
    assert sorted(jobs["generation.tasks.deliver_videos"].args[0]) == sorted(j.pk for j in done)
    assert "generation.tasks.poll_videos" not in jobs
    assert "generation.tasks.poll_waiting" in jobs  # on the queue, not scheduled
    assert rq_queue.scheduled_job_registry.count == 0
    running.refresh_from_db()
    assert running.status == Job.Status.WAITING
    assert running.heartbeat_at > timezone.now() - timedelta(minutes=1)


def test_with_nothing_finished_the_next_round_waits_its_interval(user, fal, rq_queue):
    project = ProjectFactory(owner=user)
    clip_in_flight(project, fal, seconds=600)
    tasks.poll_waiting()
    assert rq_queue.count == 0
    assert rq_queue.scheduled_job_registry.count == 1
    # Looked at just now: a round at once would not look again, nor hand anything over.
    tasks.poll_waiting()
    assert rq_queue.count == 0


def test_a_clip_cancelled_while_it_is_submitted_is_cancelled_at_fal(user, fal, monkeypatch):
    scene = SceneFactory(project=ProjectFactory(owner=user, clip_seconds=2))
    frame = FrameFactory(scene=scene, duration=2.0)
    frame.image = store_bytes(scene.project_id, "frames", "frame", tiny_png("16:9"), ".png")
    frame.save(update_fields=["image"])
    fal.latency["run"] = 600.0
    submit = FalVideo.submit

    def submit_then_cancelled(self, **kwargs) -> str:
        request_id = submit(self, **kwargs)
        job = Job.objects.get(type=Job.Type.VIDEOS, target_id=frame.pk)
        services.job_cancel(job=job)  # the producer cancels while fal answers
        return request_id

    monkeypatch.setattr(FalVideo, "submit", submit_then_cancelled)
    services.start_video_generation(project=scene.project, frame=frame)
    drain()
    (request_id,) = fal.jobs
    assert fal.jobs[request_id].cancelled
    assert Job.objects.get(type=Job.Type.VIDEOS).status == Job.Status.CANCELLED


def test_a_clip_whose_status_failed_is_handed_over_to_be_asked_again(user, fal, rq_queue):
    project = ProjectFactory(owner=user)
    clip = clip_in_flight(project, fal, seconds=0)
    fal.fail_next(1, status=502, kind="status")
    tasks.poll_waiting()
    jobs = {job.func_name: job for job in rq_queue.jobs}
    assert jobs["generation.tasks.poll_videos"].args[0] == [clip.pk]
    assert "generation.tasks.deliver_videos" not in jobs


def test_a_clip_seen_finished_is_delivered_without_asking_its_status_again(user, fal, rq_queue):
    job = clip_with_keyframe(user, fal, rq_queue, seconds=0)
    tasks.poll_waiting()
    statuses = fal.count(kind="status")
    drain()
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED
    assert fal.count(kind="status") == statuses
    assert fal.count(kind="result") == 1


def test_a_clip_just_submitted_to_fal_is_left_to_the_poller(user, fal, rq_queue):
    job = clip_with_keyframe(user, fal, rq_queue, seconds=600, submitted=False)
    tasks.run_job(job.pk)
    job.refresh_from_db()
    assert job.status == Job.Status.WAITING
    assert len(fal.jobs) == 1
    assert fal.count(kind="status") == 0  # no look right after the submit
    assert rq_queue.scheduled_job_registry.count == 1  # the poller's round


def clip_with_keyframe(user, fal, rq_queue, *, seconds: float, submitted: bool = True) -> Job:
    """A frame with a keyframe and its clip job: submitted to the fake fal (running
    `seconds`) and waiting, or (`submitted=False`) queued to be submitted."""
    scene = SceneFactory(project=ProjectFactory(owner=user, clip_seconds=2))
    frame = FrameFactory(scene=scene, duration=2.0)
    frame.image = store_bytes(scene.project_id, "frames", "frame", tiny_png("16:9"), ".png")
    frame.save(update_fields=["image"])
    fal.latency["run"] = seconds
    services.start_video_generation(project=scene.project, frame=frame)
    job = Job.objects.get(type=Job.Type.VIDEOS, target_id=frame.pk)
    rq_queue.empty()
    if submitted:
        tasks.run_job(job.pk)
        job.refresh_from_db()
        assert job.status == Job.Status.WAITING
        Job.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
        rq_queue.connection.flushdb()
    return job


def test_a_clip_handed_over_is_not_asked_about_again_while_it_is_delivered(
    user, fal, rq_queue, settings
):
    settings.VIDEO_POLL_INTERVAL = 0.0  # every clip in flight is due at every round
    project = ProjectFactory(owner=user)
    done = clip_in_flight(project, fal, seconds=0)
    running = clip_in_flight(project, fal, seconds=600)
    tasks.poll_waiting()
    rq_queue.empty()  # its delivery has not run yet
    tasks.poll_waiting()
    assert status_calls(fal, running) >= 2  # asked at every round
    assert status_calls(fal, done) == 1
    assert "generation.tasks.deliver_videos" not in {j.func_name for j in rq_queue.jobs}


def status_calls(fal, job: Job) -> int:
    request_id = job.provider_request_ids[-1]
    return sum(1 for r in fal.requests if r.kind == "status" and request_id in r.path)


def test_a_round_with_nothing_finished_looks_again_itself_between_scheduler_ticks(
    user, fal, rq_queue, settings
):
    settings.VIDEO_POLL_INTERVAL = 0.05  # RQ's scheduler would start the next round 0-1 s late
    project = ProjectFactory(owner=user)
    clip = clip_in_flight(project, fal, seconds=600)
    tasks.poll_waiting()
    assert status_calls(fal, clip) > 1  # several looks in the one round
    assert rq_queue.scheduled_job_registry.count == 1  # then the next round, scheduled


def test_a_round_looking_again_hands_over_a_clip_as_soon_as_it_finishes(
    user, fal, rq_queue, settings
):
    settings.VIDEO_POLL_INTERVAL = 0.05
    project = ProjectFactory(owner=user)
    clip = clip_in_flight(project, fal, seconds=0.3)
    tasks.poll_waiting()
    jobs = {job.func_name: job for job in rq_queue.jobs}
    assert jobs["generation.tasks.deliver_videos"].args[0] == [clip.pk]
    assert rq_queue.scheduled_job_registry.count == 0
