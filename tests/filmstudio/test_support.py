"""filmstudio.support: the one worker command, process groups, waiting and the SSE reader."""

import subprocess
import sys
import time
from pathlib import Path

import django_rq
import psutil
import pytest
from rq import Queue

from filmstudio import support
from filmstudio.support import (
    Event,
    SSEBuffer,
    first_event,
    read_events,
    start_process,
    stop_process,
    wait_for,
    worker_command,
)
from tests.pipeline import subprocess_env

ROOT = Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------- the worker command


def test_workers_serve_every_queue_with_its_serializer_and_the_scheduler(settings):
    arguments = support.rqworker_arguments()
    assert arguments[: len(settings.RQ_QUEUES)] == list(settings.RQ_QUEUES)
    assert "--with-scheduler" in arguments
    serializer = arguments[arguments.index("--serializer") + 1]
    assert (
        serializer
        == settings.RQ_QUEUES["default"]["SERIALIZER"]
        == ("rq.serializers.JSONSerializer")
    )


def test_queues_that_disagree_on_the_serializer_are_refused(settings):
    settings.RQ_QUEUES = {
        "default": {"URL": settings.REDIS_URL, "SERIALIZER": "rq.serializers.JSONSerializer"},
        "other": {"URL": settings.REDIS_URL},
    }
    with pytest.raises(ValueError, match="one SERIALIZER"):
        support.rqworker_arguments()


@pytest.mark.django_db
def test_the_worker_command_runs_json_jobs(settings):
    """A worker started without the queues' serializer cannot even read the job."""
    # Straight into Redis: django-rq's queue would wait for this test's transaction to commit.
    default = django_rq.get_queue("default")
    queue = Queue(default.name, connection=default.connection, serializer=default.serializer)
    queue.empty()
    job = queue.enqueue("os.path.basename", "films/storm.mp4")
    result = subprocess.run(
        worker_command("--burst"),
        cwd=ROOT,
        env=subprocess_env(settings),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    job.refresh()
    assert job.get_status() == "finished", result.stderr
    assert job.return_value() == "storm.mp4"


def test_shell_level_callers_run_the_same_command():
    assert support.WORKER_SHELL_COMMAND == "python manage.py filmworker"
    assert "worker: python manage.py filmworker\n" in (ROOT / "Procfile").read_text()
    compose = (ROOT / "docker-compose.yml").read_text()
    assert 'command: ["python", "manage.py", "filmworker"]' in compose
    for path in (ROOT / "Procfile", ROOT / "docker-compose.yml"):
        assert "rqworker" not in path.read_text(), path


def _expanded_by_sh(command: str, **env: str) -> list[str]:
    """`command` as sh would run it, its arguments after parameter expansion."""
    script = f'set -- {command.removeprefix("exec ")}; printf "%s\\n" "$@"'
    out = subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True, check=True)
    return out.stdout.splitlines()


def _workers_flag(args: list[str]) -> str:
    return args[args.index("--workers") + 1]


@pytest.mark.parametrize(("value", "expected"), [("3", "3"), ("", "1"), (None, "1")])
def test_web_concurrency_is_the_uvicorn_worker_count_of_the_procfile_and_the_dockerfile(
    value, expected
):
    env = {"PORT": "5000", **({"WEB_CONCURRENCY": value} if value is not None else {})}
    procfile = (ROOT / "Procfile").read_text()
    web = next(line for line in procfile.splitlines() if line.startswith("web:"))
    assert _workers_flag(_expanded_by_sh(web.removeprefix("web:"), **env)) == expected
    dockerfile = (ROOT / "Dockerfile").read_text()
    cmd = dockerfile.split("exec uvicorn", 1)[1].split('"]', 1)[0]
    assert _workers_flag(_expanded_by_sh(f"uvicorn{cmd}", **env)) == expected
    compose = (ROOT / "docker-compose.yml").read_text()
    assert "WEB_CONCURRENCY: ${WEB_CONCURRENCY:-1}" in compose


def test_web_workers_reads_web_concurrency_and_refuses_nonsense():
    assert support.web_workers({}) == 1
    assert support.web_workers({"WEB_CONCURRENCY": " "}) == 1
    assert support.web_workers({"WEB_CONCURRENCY": "4"}) == 4
    for bad in ("0", "-2", "two", "65", "²"):
        with pytest.raises(ValueError, match="WEB_CONCURRENCY"):
            support.web_workers({"WEB_CONCURRENCY": bad})
    # Tests and the bench always run one process, whatever the environment says.
    assert _workers_flag(support.web_command(8000)) == "1"


@pytest.mark.django_db
def test_the_dashboard_hint_names_the_worker_command(client, user):
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    client.force_login(user)
    html = client.get("/dashboard/").content.decode()
    assert f"start one with <code>{support.WORKER_SHELL_COMMAND}</code>" in html


def test_the_dev_stack_imports_no_django():
    """`make run` imports the support module before any settings exist."""
    code = "import sys, filmstudio.devstack; sys.exit('django' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


# --------------------------------------------------------------------------- processes


def test_stopping_a_process_ends_its_whole_group():
    proc = start_process(["sh", "-c", "sleep 60 & sleep 60; wait"])
    wait_for(lambda: psutil.Process(proc.pid).children(), timeout=5)
    children = psutil.Process(proc.pid).children()
    stop_process(proc, grace=2)
    assert proc.poll() is not None
    _, alive = psutil.wait_procs(children, timeout=5)
    assert alive == []


def test_a_process_that_ignores_sigterm_is_killed_after_the_grace(tmp_path):
    log = tmp_path / "out.log"
    proc = start_process(["sh", "-c", "trap '' TERM; echo ready; sleep 60"], log=log)
    wait_for(lambda: "ready" in log.read_text(), timeout=5)
    started = time.monotonic()
    stop_process(proc, grace=0.3)
    assert proc.returncode == -9
    assert time.monotonic() - started < 5


# --------------------------------------------------------------------------- waiting


def test_wait_for_returns_the_first_truthy_value():
    values = iter([0, None, "", "done"])
    assert wait_for(lambda: next(values), timeout=5, interval=0) == "done"


def test_wait_for_says_what_it_waited_for_and_where_it_stood():
    def clips() -> str:
        return "2/3 clips"

    with pytest.raises(TimeoutError, match=r"after 0.1 s: the film did not finish \(2/3 clips\)"):
        wait_for(
            lambda: False,
            timeout=0.1,
            message="the film did not finish",
            progress=lambda: "2/3 clips",
        )


# --------------------------------------------------------------------------- SSE


def test_events_are_read_across_chunk_boundaries():
    stream = [
        b": keep-alive comment\n\n",
        b"event: stream-open\ndata:\n\n",
        b'event: message\nid: director-1:0\ndata: {"delta": "Caf\xc3',  # é split in two
        b'\xa9"}\r\n\r\nevent: complete\ndata: {"text":\ndata: "x"}\n\n',
    ]
    assert read_events(stream) == [
        Event("message", "director-1:0", {"delta": "Caf\u00e9"}),
        Event("complete", None, {"text": "x"}),
    ]


def test_the_stream_open_event_can_be_kept():
    buffer = SSEBuffer(skip=())
    assert buffer.feed("event: stream-open\ndata:\n\nevent: job\ndata: 1\n\n") == [
        Event("stream-open", None, None),
        Event("job", None, 1),
    ]


def test_first_event_skips_to_the_type_asked_for():
    events = [Event("start", None, 1), Event("message", None, 2), Event("message", None, 3)]
    assert first_event(iter(events), "message").data == 2
    with pytest.raises(LookupError):
        first_event(iter(events), "complete")
