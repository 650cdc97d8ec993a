"""The staff dashboard's spend page: spend per project against its budget and per user, with a
server-rendered SVG chart of each user's spend per day (no script, no CDN). The spend comes from
the real pipeline (the offline provider priced by a rate card file) and the ledger it wrote."""

import re
from datetime import timedelta
from decimal import Decimal
from html.parser import HTMLParser

import pytest
from django.test import Client
from django.utils import timezone

from generation import services
from generation.models import SpendEntry, UserLimit
from projects.models import Project
from projects.services import project_create
from tests.factories import UserFactory
from tests.generation.test_costs import priced  # noqa: F401 (the rate card fixture)
from tests.pipeline import drain

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def offline(settings):
    settings.TEXT_PROVIDER = settings.IMAGE_PROVIDER = settings.VIDEO_PROVIDER = "local"


@pytest.fixture
def staff_client() -> Client:
    client = Client()
    client.force_login(UserFactory(username="stella", is_staff=True))
    return client


def cast_for(username: str, title: str, **fields) -> Project:
    """A project of `username` whose cast the worker drew (priced: it spent)."""
    project = project_create(owner=UserFactory(username=username), title=title, **fields)
    services.start_character_generation(project=project, count=2)
    drain()
    project.refresh_from_db()
    assert project.spent_usd > 0
    return project


class Svg(HTMLParser):
    """The chart's series: user -> its polyline's points and its dots' (day, usd)."""

    def __init__(self):
        super().__init__()
        self.series: dict[str, dict] = {}
        self.current: str | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "g" and attrs.get("class") == "series":
            self.current = attrs["data-user"]
            self.series[self.current] = {"points": None, "dots": []}
        elif tag == "polyline" and self.current:
            self.series[self.current]["points"] = attrs["points"].split()
        elif tag == "circle" and self.current:
            dot = (attrs["data-day"], Decimal(attrs["data-usd"]))
            self.series[self.current]["dots"].append(dot)

    def handle_endtag(self, tag):
        if tag == "g":
            self.current = None


def test_the_chart_has_a_series_per_user_with_their_spend_per_day(staff_client, priced):  # noqa: F811
    alice = cast_for("alice", "Low Tide", budget_usd=Decimal("2.00"))
    bob = cast_for("bob", "High Water")
    bob_again = cast_for("bob", "Second Wave")
    # alice's spend was three days ago (the ledger's dates are what the chart groups by)
    three_days_ago = timezone.now() - timedelta(days=3)
    SpendEntry.objects.filter(user=alice.owner).update(created_at=three_days_ago)
    # the worker made bob a limit row (its lock); staff set his cap on it
    UserLimit.objects.filter(user=bob.owner).update(daily_spend_usd=Decimal("7.50"))

    response = staff_client.get("/dashboard/spend/")
    assert response.status_code == 200
    html = response.content.decode()
    chart = html[html.index("<svg") : html.index("</svg>") + 6]
    assert 'id="spend-chart"' in chart
    parsed = Svg()
    parsed.feed(chart)
    assert sorted(parsed.series) == ["alice", "bob"]  # one series per user who spent
    today = timezone.localdate()
    days = [(today - timedelta(days=n)).isoformat() for n in range(13, -1, -1)]
    ledger = {
        user: sum(e.usd for e in SpendEntry.objects.filter(user__username=user))
        for user in ("alice", "bob")
    }
    for user, series in parsed.series.items():
        assert len(series["points"]) == len(series["dots"]) == 14
        assert [day for day, _ in series["dots"]] == days
        spent = {day: usd for day, usd in series["dots"] if usd}
        paid_day = three_days_ago.date() if user == "alice" else today
        assert list(spent) == [paid_day.isoformat()]
        assert spent[paid_day.isoformat()] == pytest.approx(ledger[user], abs=Decimal("1e-6"))
    # bob spent twice as much (two casts): his line rises higher (y grows downwards)
    bob_top = min(float(p.split(",")[1]) for p in parsed.series["bob"]["points"])
    alice_top = min(float(p.split(",")[1]) for p in parsed.series["alice"]["points"])
    assert bob_top < alice_top
    assert "<script" not in chart
    # the y axis: $0 up to a round top above the highest day, in five even steps
    labels = [Decimal(t.lstrip("$")) for t in re.findall(r'text-anchor="end"[^>]*>([^<]+)<', chart)]
    assert len(labels) == 6 and labels[0] == 0
    assert labels == [labels[1] * k for k in range(6)]
    assert labels[-1] >= max(ledger.values())

    # per user: the 14 days' total and the cap in force (bob's from the admin, alice's default)
    users = response.context["users"]
    by_user = {u["user"]: u for u in users}
    assert by_user["bob"]["daily_spend_usd"] == 7.5
    assert by_user["alice"]["daily_spend_usd"] == 50.0  # settings.USER_DAILY_SPEND_USD
    assert by_user["bob"]["total"] == pytest.approx(float(ledger["bob"]))
    assert by_user["alice"]["spent_24h_usd"] == 0  # three days ago
    # per project: most spent first, spent against the budget
    projects = response.context["projects"]
    assert {p["id"] for p in projects} == {alice.pk, bob.pk, bob_again.pk}
    assert [p["spent_usd"] for p in projects] == sorted(
        (p["spent_usd"] for p in projects), reverse=True
    )
    row = next(p for p in projects if p["id"] == alice.pk)
    assert row["budget_usd"] == 2.0
    assert row["share"] == round(100 * float(alice.spent_usd) / 2)
    assert re.search(rf'<tr data-project="{alice.pk}">.*?\$2\.00', html, re.S)
    assert "no budget" in html  # bob's projects have none


def test_an_empty_ledger_says_so(staff_client):
    response = staff_client.get("/dashboard/spend/")
    assert response.status_code == 200
    assert b'id="spend-chart-empty"' in response.content
    assert b"<svg" not in response.content


def test_only_staff_see_spend(client):
    response = client.get("/dashboard/spend/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/dashboard/spend/"
    producer = UserFactory(username="petra")
    SpendEntry.objects.create(
        user=producer, call_id="c1", stage="clips", unit_type="frame", unit_id=1,
        provider="fal", model="kling", quantity=5, quantity_unit="video_second", usd="0.28",
    )  # fmt: skip
    client.force_login(producer)
    response = client.get("/dashboard/spend/")
    assert response.status_code == 403
    assert b"Staff only" in response.content
    assert b"0.28" not in response.content and b"<svg" not in response.content
