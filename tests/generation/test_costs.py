"""Money: the rate card, quotes before spending, the ledger, budgets that hold, per-user limits.

The offline provider reports usage like the real ones; a rate card file (`RATE_CARD_FILE`)
prices it like Gemini and fal here, so the whole money path runs offline for real."""

import datetime
import json
import threading
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.db import connection, transaction
from rest_framework.throttling import ScopedRateThrottle

from filmstudio.support import wait_for
from generation import costs, estimates, rates, services, usage
from generation.models import GenerationJob, SpendEntry, UserLimit
from projects.models import Project, Take
from tests.factories import FrameFactory, JobFactory, ProjectFactory, SceneFactory
from tests.pipeline import Workers, drain, subprocess_env

pytestmark = pytest.mark.django_db(transaction=True)
Job = GenerationJob

PRICED = [
    ("1M_input_tokens", "0.30"),
    ("1M_output_tokens", "2.50"),
    ("image", "0.039"),
    ("video_second", "0.056"),
    ("1M_audio_tokens", "6.00"),
]


@pytest.fixture(autouse=True)
def offline(settings):
    settings.TEXT_PROVIDER = settings.IMAGE_PROVIDER = settings.VIDEO_PROVIDER = "local"
    settings.SPEECH_PROVIDER = "local"


@pytest.fixture
def priced(settings, tmp_path):
    """The offline provider priced like the real ones (the shipped card makes it free)."""
    rows = [
        {"provider": "local", "model": "*", "unit": unit, "usd": usd, "as_of": "2026-12-01"}
        for unit, usd in PRICED
    ]
    # an image priced by its tokens, as Gemini's: 1290 output tokens at $30 per million
    rows += [
        {"provider": "local", "model": "local-image", "unit": "1M_output_tokens", "usd": "30"},
        {"provider": "local", "model": "local-image", "unit": "1M_input_tokens", "usd": "0.30"},
    ]
    for row in rows:
        row.setdefault("as_of", "2026-12-01")
    card = tmp_path / "rates.json"
    card.write_text(json.dumps({"rates": rows}))
    settings.RATE_CARD_FILE = str(card)
    return card


def make_project(api, **fields) -> int:
    body = {"title": "Ledger", "num_scenes": 2, "frames_per_scene": 2, "clip_seconds": 5}
    response = api.post("/api/projects", {**body, **fields}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()["id"]


def start_cast(api, pid: int, count: int = 2):
    return api.post(
        "/api/jobs/character-generation", {"project_id": pid, "count": count}, format="json"
    )


def approve_cast(api, pid: int) -> None:
    for character in Project.objects.get(pk=pid).characters.all():
        assert api.post(f"/api/characters/{character.pk}/approve").status_code == 200


def run_film(api, pid: int, count: int = 2) -> None:
    assert start_cast(api, pid, count).status_code == 202
    drain()
    approve_cast(api, pid)
    drain()


# --- the rate card ---------------------------------------------------------------------------


def test_the_rate_card_is_dated_data_with_sources_and_the_offline_provider_is_free(api):
    rates = api.get("/api/rates").json()
    assert isinstance(rates, list)
    by_key = {(r["provider"], r["model"], r["unit"]): r for r in rates}
    kling = by_key[("fal", "fal-ai/kling-video/v2.1/standard/image-to-video", "video_second")]
    assert kling["usd"] == 0.056 and kling["as_of"] and kling["source"].startswith("https://")
    assert by_key[("gemini", "gemini-2.5-flash", "1M_output_tokens")]["usd"] == 2.5
    assert all(r["usd"] == 0 for r in rates if r["provider"] == "local")
    assert all(set(r) >= {"provider", "model", "unit", "usd", "as_of"} for r in rates)


def test_a_rate_card_file_replaces_rows(api, priced):
    rates = {(r["provider"], r["model"], r["unit"]): r["usd"] for r in api.get("/api/rates").json()}
    assert rates[("local", "*", "video_second")] == 0.056
    assert rates[("fal", "fal-ai/kling-video/v2.1/standard/image-to-video", "video_second")]


def test_a_paid_model_without_a_price_refuses_to_quote(settings):
    settings.FAL_KEY, settings.VIDEO_PROVIDER, settings.FAL_MODEL = "k", "fal", "fal-ai/unknown"
    with pytest.raises(costs_missing_rate()):
        estimates.clips("clips", [5.0])


def costs_missing_rate():
    from generation.rates import MissingRate  # noqa: PLC0415 (one test's import)

    return MissingRate


def test_a_price_announced_for_a_later_day_is_paid_and_quoted_from_that_day(
    api, priced, monkeypatch
):
    card = json.loads(priced.read_text())
    card["rates"] += [  # the image's output tokens at double the price from 2027
        {"provider": "local", "model": "local-image", "unit": "1M_output_tokens", "usd": "60",
         "as_of": "2026-12-01", "effective_from": "2027-01-01"},
        {"provider": "gemini", "model": "gemini-2.5-flash", "unit": "1M_input_tokens",
         "usd": "0.40", "as_of": "2026-12-01", "effective_from": "2027-02-01"},
    ]  # fmt: skip
    priced.write_text(json.dumps(card))
    rates._card.cache_clear()
    day = datetime.date
    assert rates.unit_price("local", "local-image", "output_tokens", day(2026, 12, 31)) == (
        Decimal("30") / 1_000_000
    )
    assert rates.unit_price("local", "local-image", "output_tokens", day(2027, 1, 1)) == (
        Decimal("60") / 1_000_000
    )
    # the card file added a day's row: the shipped card's row of the same unit holds until then
    flash = ("gemini", "gemini-2.5-flash", "input_tokens")
    assert rates.unit_price(*flash, day(2026, 12, 31)) == Decimal("0.30") / 1_000_000
    key = ("local", "local-image", "1M_output_tokens")

    def listed(query: str = "") -> dict:
        response = api.get(f"/api/rates{query}")
        assert response.status_code == 200, response.content
        return {(r["provider"], r["model"], r["unit"]): r for r in response.json()}[key]

    monkeypatch.setattr(rates, "today", lambda: day(2026, 12, 1))
    assert listed()["usd"] == 30 and listed()["effective_from"] is None
    later = listed("?at=2027-01-02")
    assert later["usd"] == 60 and later["effective_from"] == "2027-01-01"
    for bad in ("next-year", "20270101", "2027-W01-1"):
        assert api.get(f"/api/rates?at={bad}").status_code == 400, bad
    assert api.get("/api/rates?when=2027-01-02").status_code == 400

    def cast_of_one() -> tuple[float, Decimal]:
        pid = make_project(api)
        body = {"project_id": pid, "count": 1, "dry_run": True}
        quote = api.post("/api/jobs/character-generation", body, format="json").json()
        assert start_cast(api, pid, 1).status_code == 202
        drain()
        portraits = SpendEntry.objects.filter(project_id=pid, unit_type="character")
        return quote["estimate"]["total_usd"], sum(e.usd for e in portraits)

    quoted_now, paid_now = cast_of_one()
    monkeypatch.setattr(rates, "today", lambda: day(2027, 1, 2))
    quoted_later, paid_later = cast_of_one()
    assert quoted_later > quoted_now and paid_later > paid_now > 0
    assert GenerationJob.objects.filter(status="failed").count() == 0


# --- quotes, the ledger and their agreement --------------------------------------------------


def test_the_quote_before_spending_matches_the_ledger_and_every_take_knows_its_cost(api, priced):
    pid = make_project(api)
    quote = api.get(f"/api/projects/{pid}/estimate").json()
    stages = {item["stage"] for item in quote["items"]}
    assert stages == {"characters", "portraits", "scenes", "frames", "keyframes", "clips", "lines"}
    run_film(api, pid, count=4)  # the quote assumes the default cast of 4
    project = api.get(f"/api/projects/{pid}").json()
    assert project["status"] == "complete"
    spend = api.get(f"/api/projects/{pid}/spend").json()
    entries = SpendEntry.objects.filter(project_id=pid)
    ledger = sum(e.usd for e in entries)
    assert Decimal(str(project["spent_usd"])) == ledger == Project.objects.get(pk=pid).spent_usd
    assert spend["spent_usd"] == float(ledger)
    assert spend["entries"]["count"] == entries.count()
    # one ledger row per paid call: 1 cast + 4 portraits + 1 scenes + 2 shot lists + 4 keyframes
    # + 4 clips + 4 spoken lines
    assert entries.count() == 1 + 4 + 1 + 2 + 4 + 4 + 4
    clips = entries.filter(quantity_unit="video_second")
    assert sum(e.quantity for e in clips) == 4 * 5
    assert sum(spend["by_stage"].values()) == pytest.approx(float(ledger))
    for take in Take.objects.filter(project_id=pid).exclude(kind=Take.Kind.FILM):
        unit = ("character", take.character_id) if take.character_id else ("frame", take.frame_id)
        paid = entries.filter(unit_type=unit[0], unit_id=unit[1], job_id=take.source_job_id)
        assert take.cost_usd == sum(e.usd for e in paid) > 0
    # the quote before anything ran is within 10 % of what was spent
    assert abs(Decimal(str(quote["total_usd"])) - ledger) / ledger < Decimal("0.10")
    assert api.get(f"/api/projects/{pid}/estimate").json()["total_usd"] == 0  # nothing left


def test_a_dry_run_on_every_job_request_quotes_and_starts_nothing(api, priced):
    pid = make_project(api)
    run_film(api, pid)
    project = Project.objects.get(pk=pid)
    frame = project.scenes.first().frames.first()
    character = project.characters.first()
    requests = {
        "character-generation": {"project_id": pid},
        "scene-generation": {"project_id": pid},
        "frame-generation": {"scene_id": frame.scene_id},
        "video-generation": {"frame_id": frame.pk},
        "video-stitching": {"project_id": pid},
        "portrait-generation": {"character_id": character.pk},
        "keyframe-generation": {"frame_id": frame.pk},
    }
    approve = api.post(f"/api/projects/{pid}/storyboard/approve", {"dry_run": True}, format="json")
    assert approve.status_code == 200 and approve.json()["estimate"]["total_usd"] > 0
    jobs = Job.objects.count()
    for path, body in requests.items():
        response = api.post(f"/api/jobs/{path}", {**body, "dry_run": True}, format="json")
        assert response.status_code == 200, (path, response.json())
        estimate = response.json()["estimate"]
        assert set(estimate) == {"total_usd", "items", "spent_usd", "budget_usd", "remaining_usd"}
        assert (estimate["total_usd"] > 0) == (path != "video-stitching"), path
    clip = api.post(
        "/api/jobs/video-generation", {"frame_id": frame.pk, "dry_run": True}, format="json"
    )
    assert clip.json()["estimate"]["items"][0]["count"] == 5  # seconds billed
    assert Job.objects.count() == jobs


# --- budgets ---------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [-1, "-0.01", "lots", True, 10**9, [5]])
def test_negative_absurd_or_mistyped_budgets_are_400_and_change_nothing(api, bad):
    pid = make_project(api, budget_usd=5)
    response = api.patch(f"/api/projects/{pid}", {"budget_usd": bad}, format="json")
    assert response.status_code == 400
    assert "budget_usd" in response.json()
    assert Project.objects.get(pk=pid).budget_usd == 5


def test_a_request_whose_quote_does_not_fit_is_409_with_what_it_needs(api, priced):
    pid = make_project(api, budget_usd="0.05")
    response = start_cast(api, pid)
    assert response.status_code == 409
    body = response.json()
    assert "left of the $0.05 budget" in body["detail"] and "needs $0.08" in body["detail"]
    assert body["estimate"]["total_usd"] > 0.05
    assert not Job.objects.filter(project_id=pid).exists()


def test_the_pipeline_pauses_rather_than_exceed_and_a_higher_budget_resumes(api, priced):
    pid = make_project(api, budget_usd=20)
    assert start_cast(api, pid).status_code == 202
    drain()
    approve_cast(api, pid)  # quoted and admitted: the whole film fits $20
    # lowered meanwhile (above what is spent): the clips no longer fit
    assert (
        api.patch(f"/api/projects/{pid}", {"budget_usd": "0.60"}, format="json").status_code == 200
    )
    drain()
    project = Project.objects.get(pk=pid)
    assert project.status == Project.Status.PAUSED_BUDGET
    assert project.spent_usd <= project.budget_usd
    paused = Job.objects.filter(project_id=pid, status=Job.Status.PAUSED)
    assert paused.exists() and "raise budget_usd" in paused.first().error
    assert api.get(f"/api/projects/{pid}").json()["status"] == "paused_budget"
    response = api.patch(f"/api/projects/{pid}", {"budget_usd": 20}, format="json")
    assert response.status_code == 200
    drain()
    project.refresh_from_db()
    assert project.status == Project.Status.COMPLETE
    assert project.reserved_usd == 0
    assert project.spent_usd == sum(e.usd for e in SpendEntry.objects.filter(project_id=pid))


def test_a_budget_lowered_below_what_is_spent_pauses_and_says_so(api, priced):
    pid = make_project(api)
    assert start_cast(api, pid).status_code == 202
    drain()
    spent = Project.objects.get(pk=pid).spent_usd
    assert spent > 0
    approve_cast(api, pid)  # the scene job is queued, not run yet
    response = api.patch(f"/api/projects/{pid}", {"budget_usd": "0.01"}, format="json")
    assert response.status_code == 200
    assert response.json()["status"] == "paused_budget"
    job = Job.objects.get(project_id=pid, type=Job.Type.SCENES)
    assert job.status == Job.Status.PAUSED and "below what is already spent" in job.error
    drain()
    assert not Project.objects.get(pk=pid).scenes.exists()


def test_an_agent_runs_advance_is_not_paused_with_the_queue_nor_holds_an_active_slot(
    api, user, priced, settings
):
    settings.USER_MAX_ACTIVE_PROJECTS = 1
    parked = ProjectFactory(owner=user)  # a run waiting for the person: not generating
    JobFactory(project=parked, type=Job.Type.AGENT_RUN, status=Job.Status.WAITING)
    pid = make_project(api)
    assert start_cast(api, pid).status_code == 202
    drain()
    advance = JobFactory(
        project=Project.objects.get(pk=pid), type=Job.Type.AGENT_RUN, status=Job.Status.QUEUED
    )
    approve_cast(api, pid)
    response = api.patch(f"/api/projects/{pid}", {"budget_usd": "0.01"}, format="json")
    assert response.json()["status"] == "paused_budget"
    assert Job.objects.get(project_id=pid, type=Job.Type.SCENES).status == Job.Status.PAUSED
    advance.refresh_from_db()
    assert advance.status == Job.Status.QUEUED and not advance.error  # its run goes on


def test_two_workers_racing_for_the_last_dollar_only_one_proceeds(priced, user):
    project = ProjectFactory(owner=user, budget_usd=Decimal("1.00"))
    jobs = [
        Job.objects.create(
            project=project, type=Job.Type.KEYFRAME, target_type="frame", target_id=i,
            status=Job.Status.RUNNING,
        )
        for i in (1, 2)
    ]  # fmt: skip
    barrier, outcomes = threading.Barrier(2), {}

    def worker(job: Job) -> None:
        barrier.wait()
        try:
            outcomes[job.pk] = costs.reserve(job, Decimal("0.60"))
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes.values()) == [False, True]
    project.refresh_from_db()
    assert project.reserved_usd == Decimal("0.60")
    statuses = sorted(Job.objects.filter(project=project).values_list("status", flat=True))
    assert statuses == [Job.Status.PAUSED, Job.Status.RUNNING]


def test_cancelling_releases_what_a_job_reserved(priced, user):
    project = ProjectFactory(owner=user, budget_usd=Decimal("1.00"))
    job = Job.objects.create(
        project=project, type=Job.Type.KEYFRAME, target_type="frame", target_id=1,
        status=Job.Status.RUNNING,
    )  # fmt: skip
    assert costs.reserve(job, Decimal("0.40"))
    services.job_cancel(job=job)
    project.refresh_from_db()
    assert project.reserved_usd == 0


# --- per-user limits -------------------------------------------------------------------------


def test_the_daily_cap_holds_across_projects(api, user, priced):
    UserLimit.objects.create(user=user, daily_spend_usd=Decimal("0.12"))
    first, second = make_project(api), make_project(api)
    assert start_cast(api, first).status_code == 202
    drain()
    assert Project.objects.get(pk=first).spent_usd > Decimal("0.05")
    response = start_cast(api, second)
    assert response.status_code == 429
    assert "daily spend cap of $0.12" in response.json()["detail"]


def test_the_cap_on_active_projects_holds(api, user, settings):
    settings.USER_MAX_ACTIVE_PROJECTS = 1
    first, second = make_project(api), make_project(api)
    assert start_cast(api, first).status_code == 202  # queued: active until it runs
    response = start_cast(api, second)
    assert response.status_code == 429
    assert "limit is 1" in response.json()["detail"]
    drain()
    assert start_cast(api, second).status_code == 202


def test_nothing_of_another_users_spend_is_visible(api, other_api, priced):
    pid = make_project(api)
    assert start_cast(api, pid).status_code == 202
    drain()
    for path in ("estimate", "spend"):
        assert other_api.get(f"/api/projects/{pid}/{path}").status_code == 404
    assert (
        other_api.post(
            "/api/jobs/character-generation", {"project_id": pid, "dry_run": True}, format="json"
        ).status_code
        == 404
    )
    theirs = make_project(other_api)
    assert other_api.get(f"/api/projects/{theirs}/spend").json()["spent_usd"] == 0


# --- retries and rates -----------------------------------------------------------------------


def test_a_retry_counts_toward_the_attempt_limit(api, settings, user):
    settings.JOB_MAX_ATTEMPTS = 2
    project = ProjectFactory(owner=user)
    job = Job.objects.create(
        project=project, type=Job.Type.CHARACTERS, target_type="project", target_id=project.pk,
        status=Job.Status.FAILED, attempts=1, params={"count": 1},
    )  # fmt: skip
    assert api.post(f"/api/jobs/{job.pk}/retry").status_code == 202
    services.job_cancel(job=Job.objects.get(pk=job.pk))
    response = api.post(f"/api/jobs/{job.pk}/retry")
    assert response.status_code == 409
    assert "used its 2 attempts" in response.json()["detail"]


def test_token_logins_and_login_forms_are_rate_limited(client, settings, user, monkeypatch):
    # DRF reads its rates once, into the throttle class
    monkeypatch.setitem(ScopedRateThrottle.THROTTLE_RATES, "token", "3/min")
    settings.THROTTLE_LOGIN = "3/min"
    answers = [
        client.post("/api/auth/token", {"username": "x", "password": "y"}).status_code
        for _ in range(4)
    ]
    assert answers[:3] == [400, 400, 400] and answers[3] == 429
    for path in ("/accounts/login/", "/admin/login/"):  # one window per address for both
        cache.clear()
        codes = [client.post(path, {"username": "x", "password": "y"}) for _ in range(4)]
        assert [c.status_code for c in codes[:3]] == [200, 200, 200]
        assert codes[3].status_code == 429 and int(codes[3]["Retry-After"]) > 0


def test_a_real_worker_pair_spends_the_last_dollar_once(priced, user, settings):
    """Two rq worker processes take one keyframe each at once; the budget holds one image."""
    project = ProjectFactory(owner=user, budget_usd=Decimal("0.05"))
    scene = SceneFactory(project=project)
    frames = [FrameFactory(scene=scene, order=n) for n in (1, 2)]
    jobs = [services.start_keyframe_generation(frame=f) for f in frames]  # each fits alone
    env = subprocess_env(settings, RATE_CARD_FILE=str(priced), TEXT_PROVIDER="local")
    env.update(IMAGE_PROVIDER="local", VIDEO_PROVIDER="local")
    with Workers(env, count=2):
        wait_for(
            lambda: all(
                Job.objects.get(pk=j.pk).status in (Job.Status.SUCCEEDED, Job.Status.PAUSED)
                for j in jobs
            ),
            timeout=60,
        )
    statuses = sorted(
        Job.objects.filter(pk__in=[j.pk for j in jobs]).values_list("status", flat=True)
    )
    assert statuses == [Job.Status.PAUSED, Job.Status.SUCCEEDED]
    project.refresh_from_db()
    images = SpendEntry.objects.filter(project=project, quantity_unit="image")
    assert images.count() == 1
    assert project.spent_usd == images.get().usd <= project.budget_usd
    assert project.reserved_usd == 0 and project.status == Project.Status.PAUSED_BUDGET


# --- found in review --------------------------------------------------------------------------


def test_a_deleted_projects_spend_still_counts_toward_the_daily_cap(api, user, priced):
    UserLimit.objects.create(user=user, daily_spend_usd=Decimal("0.12"))
    pid = make_project(api)
    assert start_cast(api, pid).status_code == 202
    drain()
    spent = Project.objects.get(pk=pid).spent_usd
    assert api.delete(f"/api/projects/{pid}").status_code == 204
    assert SpendEntry.objects.filter(user=user, project=None).count() > 0
    assert costs.spent_today(user.pk) == spent
    assert start_cast(api, make_project(api)).status_code == 429


def test_several_paused_jobs_resume_the_status_the_project_had(priced, user):
    project = ProjectFactory(owner=user, budget_usd=Decimal("0.01"), status="complete")
    jobs = [
        Job.objects.create(
            project=project, type=Job.Type.KEYFRAME, target_type="frame", target_id=i,
            status=Job.Status.RUNNING,
        )
        for i in (2, 1)
    ]  # fmt: skip
    for job in jobs:  # the higher pk pauses first
        assert not costs.reserve(job, Decimal("0.05"))
    project.refresh_from_db()
    assert project.status == Project.Status.PAUSED_BUDGET
    services.project_update(project=project, budget_usd=Decimal("5"))
    project.refresh_from_db()
    assert project.status == Project.Status.COMPLETE
    assert set(Job.objects.filter(project=project).values_list("status", flat=True)) == {"queued"}


def test_cancelling_the_only_paused_job_gives_the_project_its_status_back(priced, user):
    project = ProjectFactory(owner=user, budget_usd=Decimal("0.01"), status="complete")
    job = Job.objects.create(
        project=project, type=Job.Type.VIDEOS, target_type="frame", target_id=1,
        status=Job.Status.RUNNING,
    )  # fmt: skip
    assert not costs.reserve(job, Decimal("0.30"))
    services.job_cancel(job=Job.objects.get(pk=job.pk))
    project.refresh_from_db()
    assert project.status == Project.Status.COMPLETE


def test_what_a_running_job_spends_comes_off_what_it_reserved(priced, user):
    project = ProjectFactory(owner=user, budget_usd=Decimal("1.00"))
    job = Job.objects.create(
        project=project, type=Job.Type.FRAMES, target_type="scene", target_id=1,
        status=Job.Status.RUNNING,
    )  # fmt: skip
    assert costs.reserve(job, Decimal("0.50"))
    meter = costs.job_meter(Job.objects.select_related("project").get(pk=job.pk))
    with costs.metered(meter):
        usage.report(usage.Usage("local", "local-text", 1, "image", {"image": 2}))  # $0.078
    project.refresh_from_db()
    assert project.spent_usd == Decimal("0.078")
    assert project.reserved_usd == Decimal("0.422")  # not counted twice while it runs
    assert costs.remaining(project) == Decimal("0.50")


def test_two_writes_racing_without_the_project_lock_settle_each_dollar_once(priced, user):
    """Two transactions (STEP_CONCURRENCY threads) write spend against one reservation, the
    second while the first holds its rows uncommitted: the second settles what is left, not
    the reservation it saw before waiting (1.00 reserved, 0.78 spent twice: -0.56 reserved)."""
    project = ProjectFactory(owner=user, budget_usd=Decimal("5.00"))
    job = Job.objects.create(
        project=project, type=Job.Type.FRAMES, target_type="scene", target_id=1,
        status=Job.Status.RUNNING,
    )  # fmt: skip
    assert costs.reserve(job, Decimal("1.00"))
    meter_job = Job.objects.select_related("project").get(pk=job.pk)
    first_written, commit_first, pids, errors = threading.Event(), threading.Event(), {}, []

    def spend(name: str) -> None:
        try:
            if name == "second":
                first_written.wait(30)
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                pids[name] = cursor.fetchone()[0]
            with transaction.atomic(), usage.metering(costs.job_meter(meter_job)):
                usage.report(usage.Usage("local", "local-text", 20, "image", {"image": 20}))
                assert costs.record_unit("scene", 1) == Decimal("0.78")
                if name == "first":
                    first_written.set()
                    commit_first.wait(30)
        except Exception as error:  # reported by the asserts below
            errors.append(error)
        finally:
            connection.close()

    threads = {name: threading.Thread(target=spend, args=(name,)) for name in ("first", "second")}
    for thread in threads.values():
        thread.start()

    def second_waits_on_a_lock() -> bool:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", [pids.get("second")]
            )
            row = cursor.fetchone()
        return bool(row) and row[0] == "Lock"

    try:
        wait_for(second_waits_on_a_lock, timeout=30, message="the second write never waited")
    finally:
        commit_first.set()
        for thread in threads.values():
            thread.join(30)
    assert not errors
    project.refresh_from_db()
    assert project.spent_usd == Decimal("1.56")
    assert project.reserved_usd == 0  # 0.78 off the first write, the 0.22 left off the second
    assert Job.objects.get(pk=job.pk).reserved_usd == 0


def test_a_paid_voice_sample_is_in_the_ledger_as_the_users(api, user, gemini, settings):
    settings.SPEECH_PROVIDER = "gemini"
    voice = api.get("/api/voices").json()[0]["id"]
    response = api.get(f"/api/voices/{voice}/sample")
    assert response.status_code == 200
    (entry,) = SpendEntry.objects.filter(user=user, stage="voice-sample")
    assert entry.project_id is None and entry.usd > 0
    assert costs.spent_today(user.pk) == entry.usd
