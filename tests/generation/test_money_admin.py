"""Money in the admin: staff set a user's limits (blank: the defaults, the effective values
shown), the ledger is read only, and a project's budget is edited through the same service as
the API, so raising it resumes a project paused for its budget."""

from decimal import ROUND_UP, Decimal
from html.parser import HTMLParser

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission

from filmstudio.exceptions import LimitExceeded
from generation import costs, services
from generation.models import GenerationJob, SpendEntry, UserLimit
from projects.models import Project
from projects.services import project_create
from tests.factories import UserFactory
from tests.generation.test_costs import priced  # noqa: F401 (the rate card fixture)
from tests.pipeline import drain

pytestmark = pytest.mark.django_db(transaction=True)
Job = GenerationJob


@pytest.fixture(autouse=True)
def offline(settings):
    settings.TEXT_PROVIDER = settings.IMAGE_PROVIDER = settings.VIDEO_PROVIDER = "local"


@pytest.fixture
def staff_client(client):
    """A staff member (not a superuser) allowed to edit limits and read the ledger."""
    staff = UserFactory(username="stella", is_staff=True)
    codenames = ["add_userlimit", "change_userlimit", "view_userlimit", "view_spendentry"]
    staff.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    client.force_login(staff)
    return client


@pytest.fixture
def admin_client(client):
    boss = get_user_model().objects.create_superuser("boss", password="pw-for-tests-only")
    client.force_login(boss)
    return client


class Form(HTMLParser):
    """The fields of the admin's change form as the browser would post them."""

    def __init__(self):
        super().__init__()
        self.data: dict[str, str] = {}
        self.select: str | None = None
        self.textarea: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        name = a.get("name")
        if tag == "input" and name and a.get("type") not in ("submit", "button", "file"):
            if a.get("type") == "checkbox":
                if "checked" in a:
                    self.data[name] = a.get("value") or "on"
            else:
                self.data[name] = a.get("value") or ""
        elif tag == "select" and name:
            self.select = name
            self.data.setdefault(name, "")
        elif tag == "option" and self.select and "selected" in a:
            self.data[self.select] = a.get("value") or ""
        elif tag == "textarea" and name:
            self.textarea = name
            self.data[name] = ""

    def handle_data(self, data):
        if self.textarea:
            self.data[self.textarea] += data.lstrip("\n") if not self.data[self.textarea] else data

    def handle_endtag(self, tag):
        if tag == "select":
            self.select = None
        elif tag == "textarea":
            self.textarea = None


def change_form(client, url: str) -> dict[str, str]:
    parser = Form()
    parser.feed(client.get(url).content.decode())
    parser.data.pop("csrfmiddlewaretoken", None)
    return parser.data


# --- limits ------------------------------------------------------------------------------------


def test_staff_set_a_users_limits_and_blank_is_the_default(staff_client, settings):
    settings.USER_DAILY_SPEND_USD, settings.USER_MAX_ACTIVE_PROJECTS = 50.0, 3
    petra = UserFactory(username="petra")
    assert costs.limits_for(petra.pk) == costs.Limits(Decimal("50"), 3)

    response = staff_client.post(
        "/admin/generation/userlimit/add/",
        {"user": petra.pk, "daily_spend_usd": "12.50", "max_active_projects": ""},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert costs.limits_for(petra.pk) == costs.Limits(Decimal("12.50"), 3)

    row = UserLimit.objects.get(user=petra)
    url = f"/admin/generation/userlimit/{row.pk}/change/"
    page = staff_client.get(url).content.decode()
    assert "$12.50" in page and "3 (default)" in page  # what holds, beside what was set
    response = staff_client.post(url, {"daily_spend_usd": "", "max_active_projects": "7"})
    assert response.status_code == 302
    assert costs.limits_for(petra.pk) == costs.Limits(Decimal("50"), 7)
    listing = staff_client.get("/admin/generation/userlimit/?q=petra").content.decode()
    assert "$50.00 (default)" in listing and ">7<" in listing


def test_a_limit_set_in_the_admin_holds_for_the_next_request(staff_client, priced):  # noqa: F811
    petra = UserFactory(username="petra")
    staff_client.post(
        "/admin/generation/userlimit/add/",
        {"user": petra.pk, "daily_spend_usd": "0.01", "max_active_projects": ""},
    )
    project = project_create(owner=petra, title="Capped")
    with pytest.raises(LimitExceeded, match=r"daily spend cap of \$0\.01"):
        services.start_character_generation(project=project, count=2)
    assert not Job.objects.filter(project=project).exists()


def test_a_negative_limit_is_refused(staff_client):
    petra = UserFactory(username="petra")
    response = staff_client.post(
        "/admin/generation/userlimit/add/",
        {"user": petra.pk, "daily_spend_usd": "-1", "max_active_projects": "-2"},
    )
    assert response.status_code == 200  # the form again, with the errors
    assert not UserLimit.objects.filter(user=petra).exists()


# --- the ledger --------------------------------------------------------------------------------


def paid_cast(username: str, title: str) -> Project:
    project = project_create(owner=UserFactory(username=username), title=title)
    services.start_character_generation(project=project, count=2)
    drain()
    return project


def test_the_ledger_is_listed_filtered_and_searched_but_never_added_or_changed(
    staff_client,
    admin_client,
    priced,  # noqa: F811
):
    tide = paid_cast("petra", "Low Tide")
    paid_cast("omar", "Dunes")
    services.start_portrait_generation(character=tide.characters.first())  # one portrait redone
    drain()
    entries = SpendEntry.objects.filter(project=tide)
    assert entries.count() == 4  # the cast's text call, two portraits, the redone one
    base = "/admin/generation/spendentry/"
    listing = staff_client.get(base)
    assert listing.status_code == 200
    assert listing.context["cl"].result_count == SpendEntry.objects.count() == 7

    def count(**query) -> int:
        return staff_client.get(base, query).context["cl"].result_count

    assert count(stage="portrait-generation") == 1
    assert count(stage="character-generation") == 6
    assert count(provider="local") == 7
    assert count(provider="fal") == 0
    assert count(q="Low Tide") == 4
    assert count(q="omar") == 3
    filters = listing.content.decode()
    assert "By provider" in filters and "By stage" in filters

    entry = entries.first()
    before = (entry.usd, entry.quantity, entry.model)
    for client in (staff_client, admin_client):  # not even a superuser
        assert client.get(f"{base}add/").status_code == 403
        assert client.post(f"{base}add/", {"usd": "1"}).status_code == 403
        change = client.post(f"{base}{entry.pk}/change/", {"usd": "0", "model": "x"})
        assert change.status_code == 403
        delete = client.post(f"{base}{entry.pk}/delete/", {"post": "yes"})
        assert delete.status_code == 403
    page = admin_client.get(f"{base}{entry.pk}/change/").content.decode()
    assert 'name="usd"' not in page and 'name="_save"' not in page  # a read-only view
    entry.refresh_from_db()
    assert (entry.usd, entry.quantity, entry.model) == before
    assert SpendEntry.objects.count() == 7


# --- a project's budget ------------------------------------------------------------------------


def test_raising_the_budget_in_the_admin_resumes_a_paused_project(admin_client, priced):  # noqa: F811
    owner = UserFactory(username="petra")
    project = project_create(owner=owner, title="Tight", num_scenes=1, frames_per_scene=2)
    services.start_character_generation(project=project, count=1)
    drain()
    services.character_approve(character=project.characters.get())
    # lowered below what the scenes need (above what is spent): the pipeline pauses
    project.refresh_from_db()
    tight = project.spent_usd.quantize(Decimal("0.01"), rounding=ROUND_UP)
    services.project_update(project=project, budget_usd=tight)
    drain()
    project.refresh_from_db()
    assert project.status == Project.Status.PAUSED_BUDGET
    assert Job.objects.filter(project=project, status=Job.Status.PAUSED).exists()
    spent = project.spent_usd

    url = f"/admin/projects/project/{project.pk}/change/"
    page = admin_client.get(url).content.decode()
    assert 'name="budget_usd"' in page  # editable
    assert 'name="spent_usd"' not in page and f"{spent}" in page  # shown, read only
    form = change_form(admin_client, url)
    response = admin_client.post(url, {**form, "budget_usd": "5000000", "spent_usd": "0"})
    assert response.status_code == 200 and "A budget is between" in response.content.decode()
    assert Project.objects.get(pk=project.pk).status == Project.Status.PAUSED_BUDGET
    response = admin_client.post(url, {**form, "budget_usd": "20.00", "spent_usd": "0"})
    assert response.status_code == 302, response.content.decode()[:3000]
    project.refresh_from_db()
    assert project.budget_usd == Decimal("20.00")
    assert project.status != Project.Status.PAUSED_BUDGET  # resumed by project_update
    assert not Job.objects.filter(project=project, status=Job.Status.PAUSED).exists()
    assert project.spent_usd == spent  # not editable
    drain()
    project.refresh_from_db()
    assert project.status == Project.Status.COMPLETE
    assert project.spent_usd == sum(e.usd for e in SpendEntry.objects.filter(project=project))
