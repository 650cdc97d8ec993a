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
    assert sorted(jobs["generation.tasks.poll_videos"].args[0]) == sorted(j.pk for j in done)
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
