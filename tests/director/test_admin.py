import pytest
from django.contrib.auth import get_user_model

from director.models import DirectorMessage, DirectorSession, DirectorTurn

pytestmark = pytest.mark.django_db


def test_sessions_and_turns_show_in_the_admin(client, user):
    admin = get_user_model().objects.create_superuser("boss", password="pw-for-tests-only")
    client.force_login(admin)
    session = DirectorSession.objects.create(user=user, page="characters")
    turn = DirectorTurn.objects.create(session=session, page="characters")
    DirectorMessage.objects.create(session=session, turn=turn, role="user", text="approve all")

    assert client.get("/admin/director/directorsession/").status_code == 200
    page = client.get(f"/admin/director/directorsession/{session.pk}/change/")
    assert "approve all" in page.content.decode()
    assert client.get("/admin/director/directorturn/").status_code == 200
