"""Property-based run over the OpenAPI document: no server errors, responses match the schema."""

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from filmstudio.wsgi import application
from tests.conftest import client_for
from tests.factories import CharacterFactory, FrameFactory, JobFactory, ProjectFactory, SceneFactory


@pytest.fixture
def api_schema(db):
    # As Django's test client does: keep the test transaction's connection across requests.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield schemathesis.openapi.from_wsgi("/api/schema?format=json", application)
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def owned_ids(user) -> dict[str, int]:
    """Fresh objects for every example: an earlier example may have deleted the last ones."""
    project = ProjectFactory(owner=user, status="awaiting_approval")
    scene = SceneFactory(project=project)
    return {
        "project_id": project.pk,
        "character_id": CharacterFactory(project=project).pk,
        "scene_id": scene.pk,
        "frame_id": FrameFactory(scene=scene).pk,
        "job_id": JobFactory(project=project, status="failed").pk,
    }


def aim_at_owned_objects(case, owned_ids: dict[str, int]) -> None:
    """Random ids almost never name a real object: point half of them at the caller's own."""
    for container in (case.path_parameters, case.body):
        if not isinstance(container, dict):
            continue
        for key, value in container.items():
            # Only valid ids (positive ints): a negative case must stay invalid.
            valid = isinstance(value, int) and not isinstance(value, bool) and value >= 1
            if key in owned_ids and valid and value % 2 == 0:
                container[key] = owned_ids[key]


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=30,
    derandomize=True,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_the_api_honours_its_schema(case, user):
    aim_at_owned_objects(case, owned_ids(user))
    headers = {}
    if case.path != "/api/auth/token":
        headers = {"Authorization": f"Token {client_for(user) and user.auth_token.key}"}
    case.call_and_validate(
        headers=headers,
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
            negative_data_rejection,
        ],
    )
