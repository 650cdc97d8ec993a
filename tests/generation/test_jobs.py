"""The job API and the pipeline's rules: gate, 409s, retry, cancel, fan-in, idempotency,
errors, the watchdog and fal's webhook — with the real services, RQ and PostgreSQL."""

import json
import threading
from datetime import timedelta
from decimal import Decimal

import django_rq
import pytest
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.db import DEFAULT_DB_ALIAS, OperationalError, connection, connections, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_eventstream.models import Event

from filmstudio import eventstore
from generation import events, jobs, queue, services, watchdog
from generation.models import GenerationJob
from generation.providers.fal import FalVideo
from generation.steps import characters as characters_step
from projects.models import Character, Frame, Project, Scene, Take, Video
from tests.factories import JobFactory, ProjectFactory, SceneFactory
from tests.fakes.gemini_server import tiny_png
from tests.pipeline import drain

pytestmark = pytest.mark.django_db(transaction=True)
Job = GenerationJob


def start(api, path: str, **body):
    return api.post(f"/api/jobs/{path}", body, format="json")


@pytest.fixture
def project(user):
    return ProjectFactory(owner=user, num_scenes=2, frames_per_scene=2, clip_seconds=2)


@pytest.fixture
def cast_ready(api, project):
    """A project whose characters were generated and await a decision."""
    assert start(api, "character-generation", project_id=project.pk, count=2).status_code == 202
    drain()
    project.refresh_from_db()
    assert project.status == Project.Status.AWAITING_APPROVAL
    return list(project.characters.order_by("id"))


@pytest.fixture
def filmed(api, project, cast_ready):
    for character in cast_ready:
        api.post(f"/api/characters/{character.pk}/approve")
    drain()
    project.refresh_from_db()
    assert project.status == Project.Status.COMPLETE
    return project


# --- the gate and 409 rules ----------------------------------------------------------------


def test_scenes_wait_for_the_cast(api, project, cast_ready):
    response = start(api, "scene-generation", project_id=project.pk)
    assert response.status_code == 409
    assert "await" in response.json()["detail"]
    api.post(f"/api/characters/{cast_ready[0].pk}/reject")
    api.post(f"/api/characters/{cast_ready[1].pk}/reject")
    response = start(api, "scene-generation", project_id=project.pk)
    assert response.status_code == 409
    assert "approve at least one" in response.json()["detail"]
    project.refresh_from_db()
    assert project.status == Project.Status.AWAITING_APPROVAL
    assert not project.scenes.exists()
    # every character rejected: the cast may be generated again
    assert start(api, "character-generation", project_id=project.pk).status_code == 202


def test_rejected_characters_are_left_out_downstream(api, project, cast_ready):
    keep, drop = cast_ready
    api.post(f"/api/characters/{keep.pk}/approve")
    api.post(f"/api/characters/{drop.pk}/reject")
    drain()
    for scene in project.scenes.all():
        assert list(scene.characters.values_list("pk", flat=True)) == [keep.pk]
    prompts = " ".join(Frame.objects.values_list("prompt", flat=True))
    assert drop.name not in prompts


@pytest.mark.parametrize(
    ("path", "body", "needle"),
    [
        ("frame-generation", "project", "no scenes"),
        ("video-generation", "project", "no frames"),
        ("video-stitching", "project", "no frames"),
    ],
)
def test_steps_need_their_parents(api, project, path, body, needle):
    response = start(api, path, project_id=project.pk)
    assert response.status_code == 409
    assert needle in response.json()["detail"]
    assert not Job.objects.exists()


def test_character_generation_is_409_once_scenes_started(api, filmed):
    response = start(api, "character-generation", project_id=filmed.pk)
    assert response.status_code == 409
    assert "Scene generation has started" in response.json()["detail"]


def test_a_second_request_for_a_busy_unit_is_409(api, filmed):
    frame = Frame.objects.filter(scene__project=filmed).first()
    assert start(api, "video-generation", frame_id=frame.pk).status_code == 202
    response = start(api, "video-generation", frame_id=frame.pk)
    assert response.status_code == 409
    assert "already" in response.json()["detail"]


@pytest.mark.parametrize(
    "body",
    [{}, {"project_id": "1"}, {"project_id": 0}, {"project_id": 1, "frame_id": 2}, {"x": 1}],
)
def test_bad_job_requests_are_400(api, body):
    assert api.post("/api/jobs/video-generation", body, format="json").status_code == 400


def test_character_count_is_bounded(api, project):
    response = start(api, "character-generation", project_id=project.pk, count=11)
    assert response.status_code == 400
    assert "count" in response.json()


# --- regeneration, parents and children ----------------------------------------------------


def test_a_project_wide_request_answers_a_parent_with_one_child_per_unit(api, filmed):
    response = start(api, "video-generation", project_id=filmed.pk)
    assert response.status_code == 202
    parent = response.json()
    children = Job.objects.filter(parent_id=parent["id"])
    assert children.count() == 4
    assert {c.target_type for c in children} == {"frame"}
    listed = api.get(f"/api/jobs?parent_id={parent['id']}").json()
    assert listed["count"] == 4
    drain()
    assert api.get(f"/api/jobs/{parent['id']}/status").json()["status"] == "succeeded"
    filmed.refresh_from_db()
    assert filmed.status == Project.Status.COMPLETE
    assert Job.objects.filter(type="video-stitching", status="succeeded").count() == 2


def test_regenerating_a_scenes_frames_replaces_them_and_their_clips(api, filmed):
    scene = filmed.scenes.first()
    old_frames = set(scene.frames.values_list("pk", flat=True))
    old_clips = list(Video.objects.filter(frame__scene=scene).values_list("file", flat=True))
    assert start(api, "frame-generation", scene_id=scene.pk).status_code == 202
    drain()
    scene.refresh_from_db()
    assert scene.frames.count() == 2
    # frames are updated in place (same order), their clips regenerated; the old clips stay
    # as earlier takes of their frames (v2: every take is kept until the project goes)
    assert set(scene.frames.values_list("pk", flat=True)) == old_frames
    new_clips = set(Video.objects.filter(frame__scene=scene).values_list("file", flat=True))
    assert not new_clips & set(old_clips)
    assert all(default_storage.exists(name) for name in old_clips)
    kept = Take.objects.filter(frame__scene=scene, kind="clip", file__in=old_clips).count()
    assert kept == len(old_clips)
    filmed.refresh_from_db()
    assert filmed.status == Project.Status.COMPLETE


# --- retry and cancel ----------------------------------------------------------------------


def test_cancel_stops_a_job_and_its_children_and_marks_the_project(api, filmed):
    parent = start(api, "video-generation", project_id=filmed.pk).json()
    response = api.delete(f"/api/jobs/{parent['id']}")
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert set(Job.objects.filter(parent_id=parent["id"]).values_list("status", flat=True)) == {
        "cancelled"
    }
    filmed.refresh_from_db()
    assert filmed.status == Project.Status.CANCELLED
    drain()  # the cancelled RQ deliveries are no-ops
    assert Job.objects.get(pk=parent["id"]).status == "cancelled"
    response = api.delete(f"/api/jobs/{parent['id']}")
    assert response.status_code == 409
    assert "cancelled" in response.json()["detail"]


def test_retry_brings_a_cancelled_job_back(api, filmed):
    parent = start(api, "video-generation", project_id=filmed.pk).json()
    api.delete(f"/api/jobs/{parent['id']}")
    response = api.post(f"/api/jobs/{parent['id']}/retry")
    assert response.status_code == 202
    assert response.json()["attempts"] == 2
    drain()
    filmed.refresh_from_db()
    assert filmed.status == Project.Status.COMPLETE


def test_only_failed_or_cancelled_jobs_can_be_retried(api, filmed):
    job = Job.objects.filter(project=filmed, type="video-stitching").first()
    response = api.post(f"/api/jobs/{job.pk}/retry")
    assert response.status_code == 409
    assert "succeeded" in response.json()["detail"]


def test_job_list_filters_and_rejects_bad_filters(api, filmed):
    body = api.get(f"/api/jobs?project_id={filmed.pk}&type=frame-generation").json()
    assert body["count"] == 2
    assert {j["target"]["type"] for j in body["results"]} == {"scene"}
    for query in (
        "status=nope",
        "type=x",
        "project_id=abc",
        "project_id=²",
        "colour=red",
        f"parent_id={'9' * 40}",
    ):
        assert api.get(f"/api/jobs?{query}").status_code == 400


def test_queue_status_reports_queues_and_workers(api):
    body = api.get("/api/queues/status").json()
    assert body["queues"][0]["name"] == "default"
    assert set(body["queues"][0]) >= {"queued", "started", "scheduled", "failed", "finished"}
    assert isinstance(body["workers"], list)


def test_deleting_a_project_cancels_its_jobs_and_deletes_its_files(api, filmed):
    names = [filmed.final_video, *Frame.objects.values_list("image", flat=True)]
    assert all(default_storage.exists(n) for n in names)
    job = start(api, "video-stitching", project_id=filmed.pk).json()
    assert api.delete(f"/api/projects/{filmed.pk}").status_code == 204
    assert not Job.objects.filter(pk=job["id"]).exists()
    assert not any(default_storage.exists(n) for n in names)
    drain()  # the stitch delivery finds nothing and ends quietly


# --- fan-in under concurrency --------------------------------------------------------------


def test_exactly_one_stitch_when_every_clip_finishes_at_once(filmed):
    Project.objects.filter(pk=filmed.pk).update(status=Project.Status.GENERATING_VIDEOS)
    jobs = []
    for frame in Frame.objects.filter(scene__project=filmed):
        jobs.append(
            Job.objects.create(
                project=filmed,
                type=Job.Type.VIDEOS,
                status=Job.Status.WAITING,
                target_type="frame",
                target_id=frame.pk,
                attempts=1,
            )
        )
    stitches_before = Job.objects.filter(type="video-stitching").count()
    barrier = threading.Barrier(len(jobs))
    errors = []

    def finish(job):
        try:
            barrier.wait()
            services.job_succeed(job)
        except Exception as error:  # surfaced below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=finish, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert Job.objects.filter(type="video-stitching").count() == stitches_before + 1


def test_a_stage_that_starts_the_next_wakes_no_project_waiter(project):
    """An agent run waiting for its project goes on once nothing of it moves, not at each stage
    boundary: the scenes' success starts the frames before the waiters are looked at."""
    SceneFactory(project=project)
    Project.objects.filter(pk=project.pk).update(status=Project.Status.GENERATING_SCENES)
    scenes = JobFactory(project=project, type=Job.Type.SCENES, status=Job.Status.RUNNING)
    waiter = JobFactory(project=project, type=Job.Type.AGENT_RUN, status=Job.Status.WAITING)
    assert services.job_succeed(scenes)
    waiter.refresh_from_db()
    assert waiter.status == Job.Status.WAITING
    frames = Job.objects.get(project=project, type=Job.Type.FRAMES)
    assert services.job_fail(frames, "the shots could not be written")  # nothing moves now
    waiter.refresh_from_db()
    assert waiter.status == Job.Status.QUEUED


def _lock_free_elsewhere(project_id: int) -> bool:
    """Whether another session could take the project's row lock right now."""
    other = connections.create_connection(DEFAULT_DB_ALIAS)
    try:
        with other.cursor() as cursor:
            cursor.execute(
                "SELECT 1 FROM projects_project WHERE id = %s FOR UPDATE NOWAIT", [project_id]
            )
        return True
    except OperationalError:  # lock_not_available
        return False
    finally:
        other.close()


def test_a_project_lock_is_taken_once_per_transaction_and_again_after_a_rollback(project):
    """`hold_project_lock` sends nothing when the transaction holds the lock already; a lock
    taken in a savepoint that rolled back is gone (PostgreSQL let it go), so it is taken again."""
    with transaction.atomic():
        with CaptureQueriesContext(connection) as first:
            jobs.hold_project_lock(project.pk)
        assert len(first) == 1 and not _lock_free_elsewhere(project.pk)
        with CaptureQueriesContext(connection) as again:
            jobs.hold_project_lock(project.pk)
            jobs.hold_project_lock(project.pk)
        assert len(again) == 0
    assert _lock_free_elsewhere(project.pk)

    with transaction.atomic():
        with pytest.raises(RuntimeError), transaction.atomic():
            jobs.lock_project(project.pk)
            assert not _lock_free_elsewhere(project.pk)
            raise RuntimeError("the savepoint rolls back")
        assert _lock_free_elsewhere(project.pk)
        with CaptureQueriesContext(connection) as retaken:
            jobs.hold_project_lock(project.pk)
        assert len(retaken) == 1 and not _lock_free_elsewhere(project.pk)
    with pytest.raises(Project.DoesNotExist), transaction.atomic():
        jobs.hold_project_lock(project.pk + 1000)


def test_a_step_that_waited_for_a_cancel_sees_the_job_cancelled(project):
    """The cancel holds the project's lock while a step's finish waits for it; once the cancel
    commits, the step must see its job cancelled (a statement that waited sees other rows as
    they were when it began: the lock and the check are two statements)."""
    job = JobFactory(project=project, status=Job.Status.RUNNING)
    cancel = connections.create_connection(DEFAULT_DB_ALIAS)
    answers = []

    def finish() -> None:
        try:
            with transaction.atomic():
                answers.append(jobs.lock_if_active(job))
        finally:
            connection.close()

    try:
        cancel.set_autocommit(False)
        with cancel.cursor() as cursor:
            cursor.execute("SELECT 1 FROM projects_project WHERE id = %s FOR UPDATE", [project.pk])
            cursor.execute(
                "UPDATE generation_generationjob SET status = 'cancelled' WHERE id = %s", [job.pk]
            )
        step = threading.Thread(target=finish)
        step.start()
        step.join(timeout=1.0)
        assert step.is_alive() and answers == []  # waiting for the cancel's lock
        cancel.commit()
        step.join(timeout=10)
    finally:
        cancel.close()
    assert answers == [False]


def test_a_job_finishes_in_one_statement_and_frees_its_reservation(project):
    """The status, the reservation given back to the project and the row as it is after, in
    one statement under the lock this transaction already holds; a second finish does nothing."""
    Project.objects.filter(pk=project.pk).update(reserved_usd=Decimal("2.5"))
    job = JobFactory(project=project, status=Job.Status.RUNNING, reserved_usd=Decimal("1.25"))
    Job.objects.filter(pk=job.pk).update(error="noted meanwhile")  # the instance is behind
    with transaction.atomic():
        jobs.lock_project(project.pk)
        with CaptureQueriesContext(connection) as finish:
            assert jobs.job_finish(job, Job.Status.FAILED, wake=False, error="it broke")
    assert len(finish) == 1
    assert (job.status, job.error, job.reserved_usd) == (Job.Status.FAILED, "it broke", 0)
    assert job.finished_at is not None
    project.refresh_from_db()
    assert project.reserved_usd == Decimal("1.25")
    assert not jobs.job_finish(job, Job.Status.SUCCEEDED)  # no longer active: nothing moves
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    project.refresh_from_db()
    assert project.reserved_usd == Decimal("1.25")


# --- idempotency, provider errors, retries against the fake services -----------------------


CAST = {
    "characters": [
        {"name": n, "role": "lead", "description": "d", "appearance": "a", "personality": "p"}
        for n in ("Ada", "Bo", "Cy")
    ]
}


def test_a_rerun_of_a_finished_step_converges_without_paying_again(api, project, gemini):
    gemini.respond_json(CAST, model="gemini-2.5-flash")
    start(api, "character-generation", project_id=project.pk, count=3)
    drain()
    job = Job.objects.get(type="character-generation")
    calls = len(gemini.requests)
    assert Character.objects.filter(project=project).count() == 3
    # a duplicate delivery after a crash: the row is back to queued
    Job.objects.filter(pk=job.pk).update(status="queued")
    queue.enqueue(job.pk)
    drain()
    assert Character.objects.filter(project=project).count() == 3
    assert len(gemini.requests) == calls  # text and portraits were already paid for
    job.refresh_from_db()
    assert job.status == "succeeded"


def test_slots_another_attempt_wrote_during_the_text_call_are_updated_not_inserted(
    api, project, monkeypatch
):
    """A watchdog requeue ran a second attempt while the first waited on the model: its slots
    are in the table when the first attempt stores its cast (read before the call, they were
    inserted again: IntegrityError on character_unique_job_slot and a failed step)."""
    real = characters_step.text_provider()

    class SecondAttemptMeanwhile:
        def generate_json(self, **kwargs):
            answer = real.generate_json(**kwargs)
            job = Job.objects.get(type="character-generation")
            for slot in range(2):
                Character.objects.create(
                    project=project, source_job_id=job.pk, slot=slot, name=f"Other {slot}"
                )
            return answer

    monkeypatch.setattr(characters_step, "text_provider", SecondAttemptMeanwhile)
    start(api, "character-generation", project_id=project.pk, count=2)
    drain()
    job = Job.objects.get(type="character-generation")
    assert job.status == "succeeded", job.error
    assert job.attempts == 1
    rows = Character.objects.filter(project=project).order_by("slot")
    assert [(c.source_job_id, c.slot) for c in rows] == [(job.pk, 0), (job.pk, 1)]
    assert not any(c.name.startswith("Other") for c in rows)  # this attempt's cast, stored
    assert all(c.image and c.voice for c in rows)


def test_a_permanent_provider_error_fails_the_job_with_its_message(api, project, gemini):
    gemini.fail_next(1, status=400, message="Prompt mentions a forbidden subject")
    start(api, "character-generation", project_id=project.pk, count=3)
    drain()
    job = api.get("/api/jobs").json()["results"][0]
    assert job["status"] == "failed"
    assert "forbidden subject" in job["error"]
    project.refresh_from_db()
    assert project.status == Project.Status.FAILED
    # retried, it completes
    gemini.respond_json(CAST, model="gemini-2.5-flash")
    assert api.post(f"/api/jobs/{job['id']}/retry").status_code == 202
    drain()
    project.refresh_from_db()
    assert project.status == Project.Status.AWAITING_APPROVAL


def test_a_transient_storm_is_retried_until_it_passes(api, project, gemini, settings):
    settings.JOB_AUTO_RETRIES = 3
    gemini.respond_json(CAST, model="gemini-2.5-flash")
    gemini.fail_next(3, status=503)
    start(api, "character-generation", project_id=project.pk, count=2)
    drain()
    job = Job.objects.get(type="character-generation")
    assert job.status == "succeeded"
    assert job.attempts >= 2


# --- the watchdog --------------------------------------------------------------------------


def test_the_watchdog_stores_the_live_events_of_a_job_process_killed_before_its_end(
    project, monkeypatch
):
    services.start_character_generation(project=project, count=2)  # the project is at work
    channel = events.project_channel(project.pk)
    eventstore.flush()
    sent = [eventstore.send_event(channel, "project", {"n": n}) for n in range(3)]
    monkeypatch.setattr(eventstore, "_buffer", eventstore._Buffer())  # died with them unflushed
    call_command("watchdog", "--once")
    stored = Event.objects.filter(channel=channel, eid__in=sent)
    assert [json.loads(json.loads(e.data))["n"] for e in stored.order_by("eid")] == [0, 1, 2]
    assert watchdog.persist_live_events() == 0  # each event is read from Redis once


def test_the_watchdog_resumes_a_step_whose_worker_died(api, project, settings):
    settings.JOB_HEARTBEAT_TIMEOUT = 1
    job = services.start_character_generation(project=project, count=2)
    # a worker took it, then was SIGKILLed: the row says running, nothing beats, RQ lost it
    django_rq.get_connection("default").flushdb()
    Job.objects.filter(pk=job.pk).update(
        status="running", heartbeat_at=timezone.now() - timedelta(seconds=5)
    )
    assert watchdog.sweep()["running"] == 1
    drain()
    job.refresh_from_db()
    assert job.status == "succeeded"
    assert project.characters.count() == 2


def test_the_watchdog_stops_resuming_a_job_that_keeps_killing_its_worker(project, settings):
    settings.JOB_HEARTBEAT_TIMEOUT = 1
    settings.JOB_MAX_ATTEMPTS = 3
    job = services.start_character_generation(project=project, count=2)
    for attempt in range(1, 4):
        django_rq.get_connection("default").flushdb()  # the worker died with the job
        Job.objects.filter(pk=job.pk).update(
            status="running", heartbeat_at=timezone.now() - timedelta(seconds=5)
        )
        resumed = watchdog.sweep()["running"]
        job.refresh_from_db()
        if attempt < 3:
            assert (resumed, job.status, job.attempts) == (1, "queued", attempt + 1)
    assert job.status == "failed"
    assert "Stopped after 3 attempts" in job.error
    assert django_rq.get_queue("default").count == 0
    project.refresh_from_db()
    assert project.status == Project.Status.FAILED
    eventstore.flush()  # as the watchdog command does after each sweep
    published = Event.objects.filter(channel=f"project-{project.pk}", type="job")
    assert any(json.loads(json.loads(e.data))["status"] == "failed" for e in published)


def test_the_watchdog_re_enqueues_a_queued_job_lost_with_redis(project, settings):
    settings.JOB_HEARTBEAT_TIMEOUT = 1
    job = services.start_character_generation(project=project, count=1)
    django_rq.get_connection("default").flushdb()
    Job.objects.filter(pk=job.pk).update(updated_at=timezone.now() - timedelta(seconds=5))
    assert watchdog.sweep() == {"running": 0, "queued": 1, "waiting": 0, "overdue": 0}
    assert watchdog.sweep()["queued"] == 0  # alive again: not enqueued twice
    drain()
    job.refresh_from_db()
    assert job.status == "succeeded"


def test_a_step_whose_rows_vanished_ends_quietly(project):
    scene = Scene.objects.create(project=project, order=1, status="ready")
    job = JobFactory(
        project=project, type="frame-generation", target_type="scene", target_id=scene.pk
    )
    scene.delete()
    queue.enqueue(job.pk)
    drain()
    job.refresh_from_db()
    assert job.status == "cancelled"
    assert "no longer exists" in job.error


# --- fal: polling and the webhook ----------------------------------------------------------


def test_clips_come_from_fal_and_are_normalized(api, project, cast_ready, fal):
    for character in cast_ready:
        api.post(f"/api/characters/{character.pk}/approve")
    drain()
    project.refresh_from_db()
    assert project.status == Project.Status.COMPLETE
    assert fal.count(kind="submit") == 4
    for video in Video.objects.all():
        assert video.duration == pytest.approx(2.0, abs=0.1)  # fal's 1 s clip padded to 2 s


def test_the_fal_webhook_verifies_signatures_and_is_idempotent(api, client, project, fal, settings):
    request_id = FalVideo().submit(
        image=tiny_png(), prompt="waves", duration=2, aspect_ratio="16:9", seed=1
    )
    scene = Scene.objects.create(project=project, order=1, status="ready")
    frame = Frame.objects.create(scene=scene, order=1, duration=2, status="ready", image="x.png")
    job = Job.objects.create(
        project=project,
        type="video-generation",
        status="waiting",
        target_type="frame",
        target_id=frame.pk,
        attempts=1,
        provider_request_ids=[request_id],
    )
    body, headers = fal.webhook_for(request_id, bad_signature=True)
    response = client.post(
        "/api/webhooks/fal", body, content_type="application/json", headers=headers
    )
    assert response.status_code == 401
    assert django_rq.get_queue("default").count == 0
    body, headers = fal.webhook_for(request_id)
    for _ in range(2):  # fal retries deliveries
        response = client.post(
            "/api/webhooks/fal", body, content_type="application/json", headers=headers
        )
        assert response.status_code == 200
    job.refresh_from_db()
    assert job.status == "waiting"
    assert django_rq.get_queue("default").count == 2  # two polls: the first wins, then no-op
