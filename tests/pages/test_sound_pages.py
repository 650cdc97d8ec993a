"""Sound in a real browser (uvicorn and an RQ worker underneath, the offline provider with
eSpeak NG): the cast's voice pickers play samples and save, each spoken line plays in the
storyboard, the sound panel sets the music (and uploads a track), burns subtitles in, speaks
the lines after its quote, and downloads the subtitles (issue 13)."""

import pytest

from generation.models import GenerationJob
from media import ffmpeg
from projects.models import Character, Frame, Project
from tests.pages.conftest import finished_film, login, screenshot, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """The server checks passwords with the default hashers, so users are hashed with one."""


@pytest.fixture
def film(stack) -> Project:
    return finished_film(stack, username="oona", title="Low Tide")


def test_voices_lines_music_and_subtitles_from_the_studio(page, stack, film, tmp_path):
    character = film.characters.get()
    frames = list(Frame.objects.filter(scene__project=film).order_by("order"))
    assert all(f.line_take_id for f in frames)
    login(page, "oona", next_url=f"/studio/?project={film.pk}")

    # the cast: a voice picker showing the character's voice, a sample that plays
    select = page.locator(f"select[data-voice-for='{character.pk}']")
    select.wait_for()
    page.wait_for_function(
        f"document.querySelector(\"select[data-voice-for='{character.pk}']\").options.length >= 8"
    )
    assert select.input_value() == character.voice
    with page.expect_response("**/api/voices/*/sample") as sample:
        page.click(f"#character-{character.pk} .voice-sample")
    assert sample.value.status == 200 and sample.value.body()[:4] == b"RIFF"

    # each spoken line plays in the storyboard
    for frame in frames:
        audio = page.locator(f"[data-line='{frame.pk}'] audio")
        audio.wait_for()
        response = page.request.get(audio.get_attribute("src"))
        assert response.ok and response.body()[:4] == b"RIFF"
    screenshot(page, "sound-storyboard")

    # another voice: saved, and the lines it speaks go stale
    other = next(
        v for v in select.locator("option").evaluate_all("os => os.map(o => o.value)")
        if v != character.voice
    )  # fmt: skip
    select.select_option(other)
    wait_until(lambda: Character.objects.get(pk=character.pk).voice == other)
    page.wait_for_selector(f"[data-line='{frames[0].pk}'][data-stale='true']")

    # speak them again, after the quote
    page.click("#speak-lines")
    page.wait_for_selector("#confirm[open] #confirm-title:text('Speak the lines?')")
    page.click("#confirm-go")
    wait_until(
        lambda: (
            film.jobs.filter(
                type=GenerationJob.Type.AUDIO, status=GenerationJob.Status.SUCCEEDED
            ).count()
            >= 2
        ),
        message="the lines were not spoken again",
        stack=stack,
    )
    page.wait_for_selector(f"[data-line='{frames[0].pk}']:not([data-stale])")

    # the sound panel: music, burn-in, an uploaded track
    page.select_option("#music-choice", "generated")
    wait_until(lambda: Project.objects.get(pk=film.pk).music == "generated")
    page.check("#burn-subtitles")
    wait_until(lambda: Project.objects.get(pk=film.pk).burn_subtitles)
    track = ffmpeg.music_bed(tmp_path / "theme.wav", duration=3, seed=4)
    page.set_input_files("#music-file", str(track))
    wait_until(lambda: Project.objects.get(pk=film.pk).music_file != "")
    page.wait_for_function("document.querySelector('#music-choice').value === 'upload'")
    bad = tmp_path / "not-audio.mp3"
    bad.write_bytes(b"this is text, not sound")
    page.set_input_files("#music-file", str(bad))
    page.wait_for_selector("#notice:has-text('Not an audio file')")

    # the subtitles download, speaker and line
    with page.expect_download() as info:
        page.click("#subtitles-srt")
    saved = tmp_path / info.value.suggested_filename
    info.value.save_as(saved)
    text = saved.read_text()
    assert saved.suffix == ".srt" and f"{character.name}:" in text and "-->" in text
    screenshot(page, "sound-panel")
