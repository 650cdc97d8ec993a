"""The studio's ES modules as production serves them: DEBUG off, static files collected with the
configured storage and served by WhiteNoise, so relative `import`s must resolve there too."""

import re
import subprocess
import sys

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model

from filmstudio.support import free_port, start_process, stop_process, wait_for, web_command, web_up
from tests.pages.conftest import PASSWORD, ROOT, login
from tests.pipeline import subprocess_env

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

MODULES = sorted(p.name for p in (ROOT / "static" / "filmstudio" / "studio").glob("*.js"))


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """The server checks passwords with the default hashers, so users are hashed with one."""


@pytest.fixture(scope="module")
def production(django_db_setup, tmp_path_factory, request) -> str:
    """uvicorn with DEBUG off over `collectstatic`'s output, as in the Docker image."""
    folder = tmp_path_factory.mktemp("production")
    env = subprocess_env(
        settings,
        DJANGO_DEBUG="false",
        STATIC_ROOT=folder / "static",
        MEDIA_ROOT=folder / "media",
        VAR_DIR=folder / "var",
        SECURE_SSL_REDIRECT="false",  # plain http on loopback
        SESSION_COOKIE_SECURE="false",
        CSRF_COOKIE_SECURE="false",
        SECURE_HSTS_SECONDS=0,
        DIRECTOR_PROVIDER="local",
        DIRECTOR_LOCAL_DELAY=0,
    )
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"],
        cwd=ROOT,
        env=env,
        check=True,
        timeout=120,
    )
    port = free_port()
    log = folder / "uvicorn.log"
    server = start_process(web_command(port), env, log=log)
    request.addfinalizer(lambda: stop_process(server))
    url = f"http://127.0.0.1:{port}"
    wait_for(
        lambda: web_up(url), timeout=30, message="uvicorn did not start", progress=log.read_text
    )
    return url


def test_the_studio_loads_its_modules_and_the_director_answers(browser, production):
    get_user_model().objects.create_user(username="mona", password=PASSWORD)
    context = browser.new_context(base_url=production, viewport={"width": 1360, "height": 900})
    context.set_default_timeout(20_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    scripts: dict[str, tuple[int, str]] = {}
    page.on(
        "response",
        lambda r: (
            scripts.__setitem__(r.url, (r.status, r.headers.get("content-type", "")))
            if r.url.endswith(".js")
            else None
        ),
    )
    try:
        login(page, "mona")
        page.wait_for_selector("body[data-director-pages='ready']")
        page.fill("#director-input", "What is the status?")
        page.click("#director-send")
        page.wait_for_selector(".bubble.assistant[data-complete]")
        assert page.text_content(".bubble.assistant .text")
    finally:
        context.close()
    assert errors == []
    # by file name; a manifest storage would add a content hash before ".js"
    loaded = {
        re.sub(r"\.[0-9a-f]{12}\.js$", ".js", u.rsplit("/", 1)[1]): v for u, v in scripts.items()
    }
    for name in ["studio.js", *MODULES]:
        status, content_type = loaded[name]
        assert status == 200, name
        assert content_type.startswith("text/javascript"), (name, content_type)
