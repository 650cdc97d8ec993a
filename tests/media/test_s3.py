"""Blobs, project deletion and the sweep against S3 storage (moto's server on loopback)."""

import uuid
from collections.abc import Iterator
from io import StringIO

import boto3
import httpx
import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import call_command
from moto.server import ThreadedMotoServer
from storages.backends.s3 import S3Storage

from media.signing import blob_url
from media.storage import delete_project_files, media_name
from tests.factories import CharacterFactory, ProjectFactory

pytestmark = pytest.mark.django_db

CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
REGION = "us-east-1"


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def bucket(s3_endpoint: str, settings):
    """A fresh bucket per test (moto's state lives as long as the server), made the default."""
    name = f"media-{uuid.uuid4().hex[:12]}"
    s3 = boto3.resource("s3", endpoint_url=s3_endpoint, region_name=REGION, **CREDENTIALS)
    s3.create_bucket(Bucket=name)
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": name,
                "endpoint_url": s3_endpoint,
                "region_name": REGION,
                "access_key": CREDENTIALS["aws_access_key_id"],
                "secret_key": CREDENTIALS["aws_secret_access_key"],
                "querystring_expire": 3600,
                "file_overwrite": False,
                "default_acl": None,
            },
        },
    }
    return s3.Bucket(name)


def store(project_id: int, data: bytes = b"frame bytes", media_type: str = "frames") -> str:
    return default_storage.save(media_name(project_id, media_type, "x", ".png"), ContentFile(data))


def keys(bucket) -> set[str]:
    return {item.key for item in bucket.objects.all()}


def test_the_default_storage_is_s3_in_the_bucket(bucket):
    assert isinstance(default_storage, S3Storage)
    name = store(1)
    assert keys(bucket) == {name}


def test_the_owner_is_redirected_to_a_presigned_url_serving_the_same_bytes(api, user, bucket):
    data = b"\x89PNG not really, but bytes"
    name = store(ProjectFactory(owner=user).pk, data)
    response = api.get(f"/blob/{name}")
    assert response.status_code == 302
    assert response["Cache-Control"] == "private, no-store"
    location = response["Location"]
    # SigV2 (`Signature=`) unless settings pin `signature_version`; SigV4 has `X-Amz-Signature=`.
    assert "Signature=" in location
    fetched = httpx.get(location, trust_env=False)
    assert fetched.status_code == 200
    assert fetched.content == data
    assert fetched.headers["content-type"] == "image/png"
    # Moto checks that a presign is present (not its value); without one the object is private.
    assert httpx.get(location.partition("?")[0], trust_env=False).status_code == 403


def test_an_anonymous_client_with_a_signed_url_is_redirected_too(client, user, bucket):
    name = store(ProjectFactory(owner=user).pk)
    response = client.get(blob_url(name))
    assert response.status_code == 302
    assert httpx.get(response["Location"], trust_env=False).content == b"frame bytes"


def test_another_user_gets_404_not_a_redirect(other_api, user, bucket):
    name = store(ProjectFactory(owner=user).pk)
    response = other_api.get(f"/blob/{name}")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}


def test_a_missing_object_answers_404(api, user, bucket):
    project = ProjectFactory(owner=user)
    response = api.get(f"/blob/{project.pk}/frames/never-stored.png")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}


def test_a_traversal_never_reaches_the_bucket(api, user, bucket):
    project = ProjectFactory(owner=user)
    bucket.put_object(Key="secret.txt", Body=b"secret")
    for path in (f"{project.pk}/frames/..%2f..%2fsecret.txt", f"{project.pk}/frames/%2e%2e"):
        assert api.get(f"/blob/{path}").status_code == 404


def test_delete_project_files_removes_the_projects_objects(bucket):
    doomed = {store(1, media_type=media_type) for media_type in ("characters", "frames", "final")}
    kept = store(2)
    assert keys(bucket) == {*doomed, kept}
    assert delete_project_files(1) == 3
    assert keys(bucket) == {kept}


def test_sweep_media_removes_an_orphan_object_and_keeps_referenced_ones(bucket):
    project = ProjectFactory()
    referenced = CharacterFactory(project=project, image=store(project.pk, media_type="characters"))
    orphan = store(project.pk)
    of_deleted_project = store(project.pk + 1000)
    out = StringIO()
    # Objects cannot be back-dated in S3, so every file counts as old here.
    call_command("sweep_media", "--min-age", "0", stdout=out)
    assert out.getvalue().splitlines()[-1] == "Deleted 2 unreferenced media files."
    assert keys(bucket) == {referenced.image}
    assert orphan not in keys(bucket) and of_deleted_project not in keys(bucket)


def test_sweep_media_keeps_young_objects_by_default(bucket):
    orphan = store(ProjectFactory().pk)
    call_command("sweep_media", stdout=StringIO())
    assert keys(bucket) == {orphan}
