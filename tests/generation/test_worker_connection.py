"""PreloadWorker hands its database connection from one work horse to the next, and drops it
when a job did not leave it idle (a crash, a kill on timeout, a transaction left open)."""

import pytest
from rq.job import Job as RQJob
from rq.job import JobStatus

from filmstudio.support import start_process, stop_process, wait_for, worker_command
from tests.pipeline import subprocess_env

pytestmark = pytest.mark.django_db(transaction=True)

TASKS = "tests.generation.worker_tasks"


def run_in_one_worker(
    settings, rq_queue, tmp_path, calls: list[tuple[str, tuple, int]]
) -> list[RQJob]:
    """Enqueue `calls` ((task, args, timeout)), run them in order on one real worker (burst)."""
    jobs = [
        rq_queue.enqueue(f"{TASKS}.{name}", *args, job_timeout=timeout, result_ttl=600)
        for name, args, timeout in calls
    ]
    log = tmp_path / "worker.log"
    proc = start_process(worker_command("--burst"), subprocess_env(settings), log=log)
    try:
        wait_for(lambda: proc.poll() is not None, timeout=90, message="the worker did not finish")
    finally:
        stop_process(proc)
    assert proc.returncode == 0, log.read_text()[-3000:]
    for job in jobs:
        job.refresh()
    return jobs


def test_the_horses_of_a_worker_run_on_one_connection(settings, rq_queue, tmp_path):
    jobs = run_in_one_worker(settings, rq_queue, tmp_path, [("backend_pid", (), 30)] * 3)
    assert [job.get_status() for job in jobs] == [JobStatus.FINISHED] * 3
    pids = {job.return_value() for job in jobs}
    assert len(pids) == 1  # handed over: no connection (nor PostgreSQL backend) per job


def test_a_job_killed_inside_a_query_leaves_the_next_one_a_new_connection(
    settings, rq_queue, tmp_path
):
    jobs = run_in_one_worker(
        settings,
        rq_queue,
        tmp_path,
        [("backend_pid", (), 30), ("sleep_in_a_query", (5,), 1), ("backend_pid", (), 30)],
    )
    first, hung, after = jobs
    assert hung.get_status() == JobStatus.FAILED  # its timeout ended it mid-statement
    assert after.get_status() == JobStatus.FINISHED
    assert after.return_value() != first.return_value()


def test_a_transaction_left_open_is_not_handed_on(settings, rq_queue, tmp_path):
    jobs = run_in_one_worker(
        settings,
        rq_queue,
        tmp_path,
        [("leave_a_transaction_open", (), 30), ("backend_pid", (), 30), ("backend_pid", (), 30)],
    )
    assert [job.get_status() for job in jobs] == [JobStatus.FINISHED] * 3
    left_open, after, again = (job.return_value() for job in jobs)
    assert after != left_open  # the next job did not run inside the open transaction
    assert again == after
