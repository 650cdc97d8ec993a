"""The RQ worker the project runs: it loads the pipeline once, before forking.

`rqworker` forks a work horse per job, and by default each horse imports generation.tasks, the
steps and the provider SDKs (google-genai, fal-client) afresh, builds google-genai's pydantic
validators and creates its HTTP clients: about a second of CPU per job on a 2-core machine
(`make bench`, orchestration overhead). Done here, in the parent, every horse inherits it.
Nothing here opens a socket or a database connection, so the fork stays safe.
"""

import importlib
import json
import logging
import time

import httpx
import redis
from django.conf import settings
from rq import SimpleWorker, Worker

from filmstudio import eventstore
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
    stop_asked = False

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
