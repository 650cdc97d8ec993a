"""The RQ worker the project runs: it loads the pipeline once, before forking.

`rqworker` forks a work horse per job, and by default each horse imports generation.tasks, the
steps and the provider SDKs (google-genai, fal-client) afresh, builds google-genai's pydantic
validators and creates its HTTP clients: about a second of CPU per job on a 2-core machine
(`make bench`, orchestration overhead). Done here, in the parent, every horse inherits it.
Nothing here opens a socket or a database connection, so the fork stays safe.
"""

import contextlib
import importlib
import json
import logging
import mmap
import time

import httpx
import psycopg
import redis
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from rq import SimpleWorker, Worker

from filmstudio import db, eventstore
from generation.jobtypes import load_job_types
from generation.schemas import CastPlan
from generation.steps.common import film_format_of
from media import ffmpeg
from projects.models import Project

logger = logging.getLogger(__name__)

PRELOAD = (
    "generation.tasks",
    "generation.providers.gemini",
    "generation.providers.fal",
    "generation.providers.local",
)


def warm() -> None:
    for module in PRELOAD:
        importlib.import_module(module)
    load_job_types()
    # Imported here, like PRELOAD, inside PreloadWorker's try: a failing preload slows the
    # start instead of stopping the worker.
    from google import genai  # noqa: PLC0415 (best-effort preload)
    from google.genai import types  # noqa: PLC0415 (best-effort preload)

    from generation.providers.fal import download_client, fal_sync_client  # noqa: PLC0415 (preload)
    from generation.providers.gemini import gemini_client  # noqa: PLC0415 (best-effort preload)

    # google-genai's models build their pydantic validators on first use, the request's and
    # each nested model of the answer (Candidate, Content, Part, Blob, the usage metadata...):
    # 20-60 ms in every horse. One structured-text and one image call through the real SDK,
    # answered in memory, build them all here.
    def answer(request: httpx.Request) -> httpx.Response:
        image = b'"IMAGE"' in request.content
        return httpx.Response(200, content=json.dumps(_sample_answer(image=image)).encode())

    offline = httpx.Client(transport=httpx.MockTransport(answer))
    client = genai.Client(
        api_key="warm",
        http_options=types.HttpOptions(
            httpx_client=offline, retry_options=types.HttpRetryOptions(attempts=1)
        ),
    )
    reference = types.Part.from_bytes(data=b"\x89PNG", mime_type="image/png")
    client.models.generate_content(
        model="warm",
        contents=["warm", reference],
        config=types.GenerateContentConfig(
            response_mime_type="application/json", response_schema=CastPlan
        ),
    )
    client.models.generate_content(
        model="warm",
        contents=["warm", reference],
        config=types.GenerateContentConfig(
            response_modalities=["IMAGE"],
            image_config=types.ImageConfig(aspect_ratio="16:9"),
            seed=1,
        ),
    )
    # A cast's plan is a model class of its own per size (`Plan.sized`, cached): about a
    # millisecond of pydantic's class building in every horse, made here for each cast size
    # the API takes (1-10).
    for size in range(1, 11):
        CastPlan.sized(size)
    # One client per key (cached): made before the fork, no connection opened yet.
    for key in settings.GEMINI_API_KEYS:
        gemini_client(key, settings.GEMINI_BASE_URL, int(settings.GEMINI_TIMEOUT * 1000))
    # fal's client and the clip downloads' HTTP client, likewise (their TLS contexts).
    if settings.FAL_KEY:
        fal_sync_client(settings.FAL_KEY, settings.FAL_TIMEOUT)
    download_client()
    # normalize_clip compares a clip with a one-frame sample of the film's format (to stream-copy
    # what is already in it): 40-50 ms of x264 at 720p, taken here for each aspect ratio.
    for ratio in Project.AspectRatio.values:
        ffmpeg.sample_film_format(film_format_of(ratio))


def _sample_answer(*, image: bool) -> dict:
    """A Gemini answer: an image or JSON text, with usage."""
    usage = {"promptTokenCount": 1, "candidatesTokenCount": 1, "totalTokenCount": 2}
    details = [{"modality": "IMAGE" if image else "TEXT", "tokenCount": 1}]
    data = {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}}
    part = data if image else {"text": "{}"}
    return {
        "candidates": [
            {
                "content": {
                    "role": "model",
                    "parts": [part],
                },
                "finishReason": "STOP",
                "index": 0,
            }
        ],
        "usageMetadata": {
            **usage,
            "promptTokensDetails": details,
            "candidatesTokensDetails": details,
        },
        "modelVersion": "warm",
        "responseId": "warm",
    }


class FlushesEvents:
    """A job's live events went out through Redis as they happened; when it ends (succeeded,
    failed, timed out) they are written to the replay log, all in one INSERT."""

    def perform_job(self, job, queue) -> bool:
        try:
            return super().perform_job(job, queue)  # type: ignore[misc]
        finally:
            eventstore.flush()


class InlineWorker(FlushesEvents, SimpleWorker):
    """Jobs in this process (the CLI without a worker, tests): `generation.inline`."""


class PreloadWorker(FlushesEvents, Worker):
    """Forks a work horse per job (a job that leaks or hangs takes only its horse down: RQ's
    timeout kills it), with the pipeline loaded before the fork (`warm`) and the database
    connection of the worker handed over from one horse to the next.

    Connecting was a good part of a short job: the connection itself, and PostgreSQL forking a
    backend that then loads its catalog caches again (15 ms of server CPU per job in `make
    bench`'s orchestration bench, against 5 ms on a backend in use). So the worker opens one
    connection and never uses it itself: each horse inherits it (`filmstudio.db.handing_over`)
    and, when its job leaves it idle (no transaction open, the same connection still open),
    says so in a byte shared with the worker; otherwise (a crash, a kill on timeout, a broken
    connection) the worker drops it and the next horse gets a new one. Django's health check at
    a job's first query (CONN_HEALTH_CHECKS) replaces one found dead meanwhile."""

    stop_asked = False
    _handed = None  # the connection handed to the horse (in the worker, and in the horse)

    def request_stop(self, signum, frame):
        """SIGTERM/SIGINT: RQ's own flag is only set while a job runs (idle, it raises
        StopRequested instead), so remember the stop here and never work again after it."""
        self.stop_asked = True
        super().request_stop(signum, frame)

    def __init__(self, *args, **kwargs):
        try:
            warm()
        except Exception:  # a cold start is slower, not broken
            logger.exception("preloading the pipeline failed; jobs will load it themselves")
        super().__init__(*args, **kwargs)
        db.connect_directly()  # one connection, handed over: not a pool's
        self._handed_back = mmap.mmap(-1, 1)  # MAP_SHARED: what the horse says, the worker reads

    def fork_work_horse(self, job, queue) -> None:
        wrapper = connections[DEFAULT_DB_ALIAS]
        if self._handed is not None and self._handed_back[0] != 1:
            logger.info("worker %s: the last job did not leave its connection idle", self.name)
            self._drop_connection()
        if wrapper.connection is None:
            try:
                wrapper.ensure_connection()
            except Exception as error:  # the database is away: the horse tries (and fails) itself
                logger.warning("worker %s: no connection to hand over: %s", self.name, error)
                wrapper.connection = None
            else:
                wrapper.connection.prepare_threshold = None  # no statement prepared by a horse
        wrapper.close_at = None  # kept from job to job (the horse's close_old_connections)
        self._handed = wrapper.connection
        self._handed_back[0] = 0
        with db.handing_over(self._handed):
            super().fork_work_horse(job, queue)

    def _drop_connection(self) -> None:
        wrapper = connections[DEFAULT_DB_ALIAS]
        with contextlib.suppress(Exception):
            wrapper.close()
        wrapper.connection = None
        self._handed = None

    def perform_job(self, job, queue) -> bool:
        try:
            return super().perform_job(job, queue)
        finally:
            if self._is_horse and self._left_idle():
                self._handed_back[0] = 1

    def _left_idle(self) -> bool:
        wrapper = connections[DEFAULT_DB_ALIAS]
        handed = self._handed
        return (
            handed is not None
            and wrapper.connection is handed
            and not handed.closed
            and not wrapper.in_atomic_block
            and handed.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        )

    def work(self, *args, burst: bool = False, **kwargs) -> bool:
        """RQ's worker quits when Redis goes away at the wrong moment (a restart, a failover):
        work again once it is back. Postgres holds the pipeline's state, and the watchdog
        re-enqueues what the restart lost."""
        delay = 1.0
        while True:
            try:
                worked = super().work(*args, burst=burst, **kwargs)
            except redis.exceptions.RedisError as error:
                logger.warning("worker %s lost Redis: %s", self.name, error)
                worked = False
            if burst or self.stop_asked or kwargs.get("max_jobs") or kwargs.get("max_idle_time"):
                return worked
            # Without a stop request RQ's loop only ends on an error, most often Redis going away.
            logger.warning(
                "worker %s stopped on an error; working again in %.0f s", self.name, delay
            )
            time.sleep(delay)
            delay = min(delay * 2, 30.0)
