"""Browser tests: a real uvicorn and a real RQ worker on the test database, driven by Chromium.

The two subprocesses live as long as the test module (each start costs seconds), and no longer:
a worker left running would take the jobs other test modules run in-process. Every test uses
`transaction=True`, so its rows are committed where the subprocesses can see them and are
flushed afterwards; each test waits for the pipeline it started to settle before that flush.
"""

import os
from pathlib import Path

import django_rq
import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from playwright.sync_api import sync_playwright
from rq import Worker

from filmstudio.support import (
    free_port,
    start_process,
    stop_process,
    wait_for,
    web_command,
    web_up,
    worker_command,
)
from generation.models import GenerationJob
from generation.services import character_approve, start_character_generation
from projects.models import Character, Project
from projects.services import project_create
from tests.pipeline import subprocess_env

# Playwright's sync API runs an event loop in this thread; the ORM calls in tests are still sync.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENS = Path("/tmp/screens")
PASSWORD = "correct horse battery"


def _subprocess_env(folder: Path) -> dict[str, str]:
    return subprocess_env(
        settings,
        MEDIA_ROOT=folder / "media",
        VAR_DIR=folder / "var",
        MEDIA_BASE_HEIGHT=180,
        MEDIA_FPS=12,
        VIDEO_POLL_INTERVAL=0.1,
        PROVIDER_BACKOFF_BASE=0.01,
        PROVIDER_BACKOFF_CAP=0.05,
        DIRECTOR_LOCAL_DELAY=0,
        # No AI keys (subprocess_env leaves them out): every provider is the offline one.
        TEXT_PROVIDER="local",
        IMAGE_PROVIDER="local",
        VIDEO_PROVIDER="local",
        DIRECTOR_PROVIDER="local",
        PYTHONUNBUFFERED=1,
    )


def _worker_up() -> bool:
    return bool(Worker.all(connection=django_rq.get_connection("default")))


class Stack:
    def __init__(self, url: str, folder: Path, logs: list[Path]):
        self.url = url
        self.folder = folder
        self.logs = logs

    def tail(self) -> str:
        return "\n".join(f"--- {log.name}\n{log.read_text()[-4000:]}" for log in self.logs)


def _empty_queue() -> None:
    """Jobs other test modules left in Redis name rows that are gone: not this worker's business."""
    queue = django_rq.get_queue("default")
    queue.empty()
    for registry in (queue.scheduled_job_registry, queue.deferred_job_registry):
        for job_id in registry.get_job_ids():
            registry.remove(job_id)


@pytest.fixture(scope="module")
def stack(django_db_setup, tmp_path_factory, request) -> Stack:
    """uvicorn + a worker on the test database; torn down before the test database is dropped."""
    _empty_queue()
    folder = tmp_path_factory.mktemp("stack")
    env = _subprocess_env(folder)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server_log, worker_log = folder / "uvicorn.log", folder / "worker.log"
    server = start_process(web_command(port), env, log=server_log)
    request.addfinalizer(lambda: stop_process(server))
    worker = start_process(worker_command(), env, log=worker_log)
    request.addfinalizer(lambda: stop_process(worker))
    stack = Stack(url, folder, [server_log, worker_log])
    wait_for(lambda: web_up(url), timeout=30, message="uvicorn did not start", progress=stack.tail)
    wait_for(_worker_up, timeout=30, message="the worker did not start", progress=stack.tail)
    return stack


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium fonts-dejavu-core)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call":
        item.failed_call = report.failed
    return report


@pytest.fixture
def page(browser, stack, settled, request):
    context = browser.new_context(base_url=stack.url, viewport={"width": 1360, "height": 900})
    context.set_default_timeout(20_000)
    page = context.new_page()
    page.console_errors = []
    page.on("pageerror", lambda error: page.console_errors.append(str(error)))
    page.on(
        "console",
        lambda message: (
            page.console_errors.append(message.text) if message.type == "error" else None
        ),
    )
    requests: list[str] = []
    page.on("requestfinished", lambda r: requests.append(f"{r.method} {r.url}"))
    yield page
    if getattr(request.node, "failed_call", False):  # what the browser saw when it went wrong
        screenshot(page, f"FAILED-{request.node.name}")
        print("console:", *page.console_errors, sep="\n")
        print("requests:", *requests[-40:], sep="\n")
    context.close()


@pytest.fixture
def settled(stack):
    """After the test: let the worker finish what the test started before the tables are flushed."""
    yield
    wait_for(
        lambda: not GenerationJob.objects.filter(status__in=GenerationJob.ACTIVE).exists(),
        timeout=30,
        message="the pipeline did not settle",
        progress=stack.tail,
    )


def screenshot(page, name: str) -> Path:
    SCREENS.mkdir(parents=True, exist_ok=True)
    path = SCREENS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def login(page, username: str, password: str = PASSWORD, next_url: str = "/studio/") -> None:
    page.goto(f"/accounts/login/?next={next_url}")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("#login-button")
    page.wait_for_url(f"**{next_url}")


def wait_until(predicate, *, timeout: float = 30, message: str = "", stack: Stack | None = None):
    progress = stack.tail if stack else None
    return wait_for(predicate, timeout=timeout, interval=0.1, message=message, progress=progress)


def finished_film(stack: Stack, *, username: str, title: str) -> Project:
    """A finished 1x2 film of one character, made by the stack's worker through the services,
    owned by a new user `username` (password PASSWORD)."""
    owner = get_user_model().objects.create_user(username=username, password=PASSWORD)
    project = project_create(
        owner=owner, title=title, num_scenes=1, frames_per_scene=2, clip_seconds=2
    )
    start_character_generation(project=project, count=1)
    wait_until(
        lambda: project.characters.filter(status=Character.Status.PENDING).exists(),
        message="no character was drawn",
        stack=stack,
    )
    character_approve(character=project.characters.get())
    wait_until(
        lambda: Project.objects.get(pk=project.pk).status == Project.Status.COMPLETE,
        timeout=60,
        message="the film did not complete",
        stack=stack,
    )
    return project
