"""The studio's Autopilot panel in a real browser (issue 15), over uvicorn and an RQ worker with
the offline planner: a run started with a goal logs live from its event stream, stops at the
cast checkpoint with its summary and estimate, a Revise with notes redraws the named portrait
and asks again, the log is read back whole after a reload (each event once), Approve goes on to
the storyboard checkpoint, and Cancel stops the run. And the log misses nothing across a restart
of the web server: the page reconnects and shows what happened meanwhile, each event once."""

import pytest
from django.contrib.auth import get_user_model

from director.models import AgentRun
from director.services import run_decide
from filmstudio.support import free_port, start_process, stop_process, web_command, web_up
from projects.models import Character, Project
from projects.services import project_create
from tests.pages.conftest import PASSWORD, _subprocess_env, login, screenshot, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

GOAL = "A lighthouse keeper befriends a storm, with two characters."


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """The server checks passwords with the default hashers, so users are hashed with one."""


@pytest.fixture
def project(stack) -> Project:
    owner = get_user_model().objects.create_user(username="aurore", password=PASSWORD)
    return project_create(
        owner=owner, title="Storm", num_scenes=1, frames_per_scene=1, clip_seconds=2
    )


def log_seqs(page) -> list[int]:
    return [int(s) for s in page.eval_on_selector_all(
        "#autopilot-log li", "items => items.map((i) => i.dataset.seq)"
    )]  # fmt: skip


def at_checkpoint(page, kind: str, nth: int = 0) -> None:
    page.wait_for_selector(
        f"#autopilot-log li[data-type='checkpoint'] >> nth={nth}", timeout=60_000
    )
    page.wait_for_selector(f"#autopilot-checkpoint[data-kind='{kind}']", timeout=30_000)


def start_run(page, project: Project) -> AgentRun:
    page.fill("#autopilot-goal", GOAL)
    page.fill("#autopilot-budget", "5")
    page.click("#autopilot-start")
    page.wait_for_selector("#confirm[open] #confirm-title:text('Start the autopilot?')")
    page.click("#confirm-go")
    page.wait_for_selector("#autopilot[data-live='live']")
    run = AgentRun.objects.get(project=project)
    assert run.goal == GOAL and float(run.budget_usd) == 5
    assert page.is_hidden("#autopilot-form")
    assert page.text_content("#autopilot-spent").endswith("of $5.00")
    return run


def test_an_autopilot_run_is_started_revised_approved_and_cancelled_from_the_studio(
    page, stack, project
):
    login(page, "aurore", next_url=f"/studio/?project={project.pk}")
    page.wait_for_selector("#project-view:not([hidden])")
    assert page.is_visible("#autopilot-form") and page.is_hidden("#autopilot-run")

    run = start_run(page, project)

    # the live log up to the cast checkpoint
    at_checkpoint(page, "cast")
    cast = list(project.characters.order_by("id"))
    assert len(cast) == 2 and all(c.status == Character.Status.PENDING for c in cast)
    summary = page.text_content("#autopilot-checkpoint .summary")
    assert all(c.name in summary for c in cast)
    assert page.text_content("#autopilot-estimate").startswith("Approving starts about $")
    assert page.locator("#autopilot-log li[data-type='action']").count() >= 2
    assert page.locator("#autopilot-log li[data-type='log']").first.text_content()
    seqs = log_seqs(page)
    assert seqs == sorted(set(seqs))  # in order, each once
    screenshot(page, "45-studio-autopilot-cast")

    # revise without notes is refused on the page; with notes the named portrait is redrawn
    page.click("#autopilot-revise")
    assert (
        page.text_content("#autopilot-checkpoint .field-error")
        == "Say what to revise in the notes."
    )
    first = cast[0]
    portrait = first.take_id
    page.fill("#autopilot-notes", f"redo {first.name}'s portrait: older, in a raincoat")
    page.click("#autopilot-revise")
    at_checkpoint(page, "cast", nth=1)
    first.refresh_from_db()
    assert first.take_id != portrait and "raincoat" in first.take.instructions
    assert page.locator("#autopilot-log li[data-type='decision']").count() == 1

    # a reload reads the whole log back, each event once, and follows the run again
    before = log_seqs(page)
    page.reload()
    page.wait_for_selector("#autopilot-checkpoint[data-kind='cast']")
    page.wait_for_selector("#autopilot[data-live='live']")
    assert log_seqs(page) == before

    # approve: the scenes and the storyboard, then its checkpoint
    page.click("#autopilot-approve")
    at_checkpoint(page, "storyboard", nth=2)
    run.refresh_from_db()
    assert run.status == AgentRun.Status.AWAITING_DECISION
    assert Project.objects.get(pk=project.pk).status == Project.Status.AWAITING_STORYBOARD_APPROVAL

    # cancel (after a confirmation)
    page.click("#autopilot-cancel")
    page.wait_for_selector("#confirm[open] #confirm-title:text('Cancel run')")
    page.click("#confirm-go")
    page.wait_for_selector("#autopilot[data-status='cancelled']")
    wait_until(
        lambda: AgentRun.objects.get(pk=run.pk).status == AgentRun.Status.CANCELLED,
        message="the run was not cancelled",
        stack=stack,
    )
    assert page.is_visible("#autopilot-form") and page.is_hidden("#autopilot-checkpoint")
    seqs = log_seqs(page)
    assert seqs == sorted(set(seqs))
    assert page.console_errors == []


def test_at_a_budget_checkpoint_the_budget_is_raised_and_the_run_approved_from_the_panel(
    page, stack, project
):
    """The offline rate card costs nothing, so the budget checkpoint (an approval the budget
    cannot pay for, tests/director/test_agent_runs.py) is set on the run here: the panel shows
    a budget field beside Approve; a refused budget changes nothing, a raised one is the
    project's and the run carries out the cast's approval."""
    login(page, "aurore", next_url=f"/studio/?project={project.pk}")
    page.wait_for_selector("#project-view:not([hidden])")
    run = start_run(page, project)
    at_checkpoint(page, "cast")
    summary = "Approving the cast starts the scenes: it needs $0.16 and $0.12 is left."
    AgentRun.objects.filter(pk=run.pk).update(checkpoint_kind="budget", checkpoint_summary=summary)
    page.reload()
    page.wait_for_selector("#autopilot-checkpoint[data-kind='budget']")
    page.wait_for_selector("#autopilot[data-live='live']")  # the run is read again then
    assert page.text_content("#autopilot-checkpoint .summary") == summary
    budget = Project.objects.get(pk=project.pk).budget_usd

    page.fill("#autopilot-raise-budget", "-1")
    page.click("#autopilot-raise")
    page.wait_for_selector("#notice.error:not([hidden])")
    assert "budget" in page.text_content("#notice").lower()
    assert Project.objects.get(pk=project.pk).budget_usd == budget
    assert AgentRun.objects.get(pk=run.pk).status == AgentRun.Status.AWAITING_DECISION

    page.fill("#autopilot-raise-budget", "12")
    page.click("#autopilot-raise")
    at_checkpoint(page, "storyboard", nth=1)
    assert float(Project.objects.get(pk=project.pk).budget_usd) == 12
    assert all(c.status == Character.Status.APPROVED for c in project.characters.all())
    # a call held for the person (as at a spend checkpoint): `held` is the event's own field
    quote = {"confirmation_required": True, "summary": "Make the clip again", "estimate": {}}
    held = {"name": "regenerate_clip", "args": {"frame_id": 1}, "result": quote, "held": True}
    run.events.create(type="action", data=held)
    page.reload()
    page.wait_for_selector("#autopilot-checkpoint[data-kind='storyboard']")
    assert page.locator("#autopilot-log li[data-type='action']").last.text_content() == (
        "regenerate_clip(frame_id=1): held for your decision"
    )
    # the browser logs the refused PATCH's 400 itself; nothing else went wrong
    assert [e for e in page.console_errors if "status of 400" not in e] == []


class RestartableWeb:
    """A web process of this test's own, on a port that stays the same across restarts (the
    page's EventSource reconnects to it)."""

    def __init__(self, stack):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = _subprocess_env(stack.folder)
        self.log = stack.folder / f"uvicorn-{self.port}.log"
        self.process = None
        self.start()

    def start(self) -> None:
        self.process = start_process(web_command(self.port), self.env, log=self.log)
        wait_until(lambda: web_up(self.url), message="uvicorn did not start")

    def stop(self) -> None:
        stop_process(self.process)
        wait_until(lambda: not web_up(self.url), message="uvicorn did not stop")


@pytest.fixture
def web(stack, request) -> RestartableWeb:
    web = RestartableWeb(stack)
    request.addfinalizer(web.stop)
    return web


def test_the_log_misses_nothing_across_a_web_server_restart(page, stack, project, web):
    page.goto(f"{web.url}/accounts/login/?next=/studio/?project={project.pk}")
    page.fill("#id_username", "aurore")
    page.fill("#id_password", PASSWORD)
    page.click("#login-button")
    page.wait_for_selector("#project-view:not([hidden])")
    start_run(page, project)
    at_checkpoint(page, "cast")
    before = log_seqs(page)

    web.stop()
    page.wait_for_selector("#autopilot[data-live='reconnecting…'], #autopilot[data-live='offline']")
    # approved meanwhile (as from another client): the run goes on to the storyboard
    run = AgentRun.objects.get(project=project)
    run_decide(run=run, decision="approve")
    wait_until(
        lambda: AgentRun.objects.get(pk=run.pk).status == AgentRun.Status.AWAITING_DECISION,
        timeout=60,
        message="the run did not reach the storyboard",
        stack=stack,
    )
    web.start()
    page.wait_for_selector("#autopilot[data-live='live']", timeout=30_000)
    at_checkpoint(page, "storyboard", nth=1)
    after = log_seqs(page)
    assert after[: len(before)] == before and after == sorted(set(after))
    missed = AgentRun.objects.get(pk=run.pk).events.filter(pk__gt=before[-1]).count()
    assert len(after) - len(before) == missed > 0
    page.click("#autopilot-cancel")
    page.click("#confirm-go")
    page.wait_for_selector("#autopilot[data-status='cancelled']")
