"""The worker's preload: what a forked job process would otherwise build again for every job."""

import json
import subprocess
import sys

import pytest

from tests.pipeline import subprocess_env

# In a fresh process (a test process has built most of them already): warm(), then a fork that
# reads a Gemini answer through the SDK, takes the fal clients and checks a clip against each
# aspect ratio's film format (normalize_clip's stream-copy test), as a work horse does.
PROBE = """
import json, os, django
django.setup()
from google.genai import types
from generation import worker
from generation.providers import fal
from generation.steps.common import film_format_of
from media import ffmpeg
from projects.models import Project
MODELS = [types.GenerateContentResponse, types.Candidate, types.Content, types.Part, types.Blob,
          types.GenerateContentResponseUsageMetadata, types.GenerateContentConfig]
def built():
    return {m.__name__: bool(m.__dict__.get("__pydantic_complete__")) for m in MODELS}
before = built()
worker.warm()
read, write = os.pipe()
if os.fork() == 0:
    made = [fal.fal_sync_client.cache_info().currsize, fal.download_client.cache_info().currsize]
    from generation import schemas
    built_plans = schemas._sized.cache_info().misses
    schemas.CastPlan.sized(4)
    made.append(schemas._sized.cache_info().misses - built_plans)
    types.GenerateContentResponse._from_response(
        response=worker._sample_answer(image=True), kwargs={})
    sampled = ffmpeg._film_tracks.cache_info()
    tracks = [bool(ffmpeg._film_tracks(ffmpeg.ffmpeg_binary(), film_format_of(ratio)))
              for ratio in Project.AspectRatio.values]
    encoded = ffmpeg._film_tracks.cache_info().misses - sampled.misses
    made.append({"sampled": sampled.currsize, "tracks": tracks, "encoded": encoded})
    os.write(write, json.dumps({"built": built(), "clients": made}).encode())
    os._exit(0)
os.close(write)
child = json.loads(os.read(read, 65536))
os.wait()
print(json.dumps({"before": before, "after": built(), **child}))
"""


@pytest.mark.django_db
def test_warm_builds_the_sdk_models_and_clients_a_job_process_would_build(settings):
    env = subprocess_env(settings, FAL_KEY="warm-key", FAL_TIMEOUT="5")
    env |= {"DJANGO_SETTINGS_MODULE": "filmstudio.settings", "GEMINI_API_KEYS": "warm-key"}
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert not all(found["before"].values())  # not built at import: warm() is what builds them
    assert all(found["after"].values()), found["after"]
    assert all(found["built"].values()), found["built"]  # still built in the job process
    fal_client, download_client, plans_built, formats = found["clients"]
    assert [fal_client, download_client] == [1, 1]  # the fal and download clients: inherited
    assert plans_built == 0  # a cast's plan class (per size) was built before the fork
    # Each aspect ratio's film format sampled before the fork: the job process encodes none.
    assert formats == {"sampled": 3, "tracks": [True, True, True], "encoded": 0}
