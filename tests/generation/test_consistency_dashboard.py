"""The keyframes' character consistency on the staff dashboard (issue 17): per project the
average, lowest and flagged count of its current keyframes' scores, and each frame's score on the
project page (`generation.selectors.keyframe_consistency`)."""

import pytest
from django.test import Client

from generation.selectors import keyframe_consistency
from projects.models import Frame, Take
from tests.factories import FrameFactory, ProjectFactory, SceneFactory, UserFactory

pytestmark = pytest.mark.django_db


def verdict(score: float, *, flagged: bool = False, issues: list[str] | None = None) -> dict:
    return {
        "score": score,
        "per_character": [
            {"character_id": 1, "name": "Mara Vell", "score": score, "issues": issues or []}
        ],
        "checked_by": "local:swatch-colour (a stand-in)",
        "threshold": 0.6,
        "flagged": flagged,
        "tries": 3 if flagged else 1,
    }


def keyframe(frame: Frame, consistency: dict | None, *, current: bool = True) -> Take:
    take = Take.objects.create(
        project=frame.scene.project,
        kind="keyframe",
        frame=frame,
        file=f"f{frame.pk}.png",
        consistency=consistency,
    )
    if current:
        Frame.objects.filter(pk=frame.pk).update(keyframe_take=take, image=take.file)
    return take


@pytest.fixture
def scored():
    """A project of four frames: 0.9, 0.8 and a flagged 0.4 current, one not scored; an older
    take of 0.1 that is not current (it does not count)."""
    project = ProjectFactory(title="Dune Sea")
    scene = SceneFactory(project=project)
    first, second, third, empty = (FrameFactory(scene=scene, order=n) for n in range(1, 5))
    keyframe(first, verdict(0.1), current=False)
    keyframe(first, verdict(0.9))
    keyframe(second, verdict(0.8))
    keyframe(third, verdict(0.4, flagged=True, issues=["hair is grey, not black"]))
    keyframe(empty, None)
    return project, third


def test_the_selector_summarises_the_current_keyframes(scored):
    project, _ = scored
    other = ProjectFactory()
    summary = keyframe_consistency([project.pk, other.pk])
    assert set(summary) == {project.pk}  # no scored keyframe, no summary
    assert summary[project.pk]["scored"] == 3
    assert summary[project.pk]["average"] == pytest.approx(0.7)
    assert summary[project.pk]["lowest"] == pytest.approx(0.4)
    assert summary[project.pk]["flagged"] == 1


def test_the_dashboard_shows_consistency_per_project_and_per_frame(scored):
    project, third = scored
    client = Client()
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    listing = client.get("/dashboard/projects/").content.decode()
    assert 'data-consistency-average="0.700"' in listing
    assert 'data-consistency-lowest="0.400"' in listing
    assert "avg 70 % · low 40 %" in listing
    assert "1 flagged" in listing

    page = client.get(f"/dashboard/projects/{project.pk}/").content.decode()
    assert "avg 70 % · low 40 %" in page
    assert page.count("data-consistency-score=") == 3
    assert "consistency 90 %" in page and "consistency 80 %" in page
    flagged = page.split(f'id="frame-{third.pk}"')[1].split("</li>")[0]
    assert "data-flagged" in flagged and "consistency 40 % · flagged" in flagged
    assert "Mara Vell 40 %: hair is grey, not black" in page
    assert "consistency 10 %" not in page  # the older take is not current
