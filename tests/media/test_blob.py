"""GET/HEAD /blob/{project_id}/{type}/{file} on local storage."""

import io
import os
import time
from pathlib import Path

import pytest
from asgiref.sync import async_to_sync
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.http import StreamingHttpResponse
from django.test import AsyncClient, Client
from django.utils.crypto import salted_hmac
from PIL import Image
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from media import ffmpeg
from media.signing import blob_url, sign, verify
from media.storage import media_name
from projects.blob import CHUNK_SIZE
from projects.models import Project
from tests.factories import CharacterFactory, FrameFactory, ProjectFactory, SceneFactory

pytestmark = pytest.mark.django_db

DATA = bytes(range(256)) * 4  # 1024 bytes, every offset distinguishable
NOT_FOUND = {"detail": "Not found."}


@pytest.fixture(scope="module")
def mp4_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    folder = tmp_path_factory.mktemp("clip")
    Image.new("RGB", (320, 180), (200, 90, 30)).save(folder / "still.png")
    fmt = ffmpeg.CanonicalFormat(width=320, height=180, fps=24)
    ffmpeg.still_to_clip(folder / "still.png", folder / "clip.mp4", fmt=fmt, duration=1.0)
    return (folder / "clip.mp4").read_bytes()


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 18), (10, 120, 200)).save(buffer, format="PNG")
    return buffer.getvalue()


def store(project_id: int, media_type: str, data: bytes, suffix: str = ".bin") -> str:
    return default_storage.save(media_name(project_id, media_type, "x", suffix), ContentFile(data))


def body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def assert_not_found(response) -> None:
    assert response.status_code == 404
    assert response.json() == NOT_FOUND


@pytest.fixture
def frame_file(media_root: Path, user) -> str:
    return store(ProjectFactory(owner=user).pk, "frames", DATA)


# --------------------------------------------------------------------------- storage switching


def test_changing_storages_setting_points_default_storage_at_the_new_location(media_root):
    assert default_storage.location == str(media_root)
    name = store(1, "frames", b"abc")
    assert (media_root / name).read_bytes() == b"abc"


# --------------------------------------------------------------------------- who may read


def test_the_owner_reads_a_file_with_a_token(api, frame_file):
    response = api.get(f"/blob/{frame_file}")
    assert response.status_code == 200
    assert body(response) == DATA
    assert response["Content-Length"] == str(len(DATA))
    assert response["Accept-Ranges"] == "bytes"
    assert response["Cache-Control"] == "private, max-age=3600"
    assert response["ETag"].startswith('"') and response["ETag"].endswith('"')


def test_the_owner_reads_a_file_with_a_session(client: Client, user, frame_file):
    client.force_login(user)
    response = client.get(f"/blob/{frame_file}")
    assert response.status_code == 200
    assert body(response) == DATA


def test_an_anonymous_client_reads_a_file_with_a_signed_url(frame_file):
    response = Client().get(blob_url(frame_file))
    assert response.status_code == 200
    assert body(response) == DATA


def test_the_image_url_from_the_api_works_for_an_anonymous_client(api, user, media_root):
    project = ProjectFactory(owner=user)
    image = png_bytes()
    CharacterFactory(project=project, image=store(project.pk, "characters", image, ".png"))
    url = api.get(f"/api/projects/{project.pk}").json()["characters"][0]["image_url"]
    response = APIClient().get(url)
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert body(response) == image


def test_the_api_gives_identical_signed_urls_on_repeated_reads(api, user, media_root):
    frame = FrameFactory(scene=SceneFactory(project=ProjectFactory(owner=user)))
    frame.image = store(frame.scene.project_id, "frames", DATA)
    frame.save(update_fields=["image"])

    def frame_image_url() -> str:
        project = api.get(f"/api/projects/{frame.scene.project_id}").json()
        return project["scenes"][0]["frames"][0]["image_url"]

    first = frame_image_url()
    assert first.startswith(f"/blob/{frame.image}?sig=")
    assert frame_image_url() == first


def test_anonymous_without_a_signature_gets_404(frame_file):
    assert_not_found(Client().get(f"/blob/{frame_file}"))


def _tampered_mac(name: str) -> str:
    expires, mac = sign(name).split(".")
    return f"{expires}.{'0' if mac[0] != '0' else '1'}{mac[1:]}"


def _extended_expiry(name: str) -> str:
    expires, mac = sign(name).split(".")
    return f"{int(expires) + 3600}.{mac}"


@pytest.mark.parametrize(
    "make_sig",
    [
        pytest.param(_tampered_mac, id="tampered-mac"),
        pytest.param(_extended_expiry, id="extended-expiry"),
        pytest.param(lambda name: sign(name, now=time.time() - 3 * 3600), id="expired"),
        pytest.param(lambda name: sign(name.replace("-", "_")), id="for-another-file"),
        pytest.param(lambda name: "", id="empty"),
        pytest.param(lambda name: "garbage", id="garbage"),
        pytest.param(lambda name: sign(name).replace(".", ""), id="no-dot"),
        pytest.param(lambda name: "²." + sign(name).split(".")[1], id="unicode-digit"),
        pytest.param(lambda name: sign(name).split(".")[0] + ".é", id="non-ascii-mac"),
        pytest.param(lambda name: "9" * 5000 + ".00", id="huge-expiry"),
    ],
)
def test_a_bad_signature_answers_404(frame_file, make_sig):
    response = Client().get(f"/blob/{frame_file}", {"sig": make_sig(frame_file)})
    assert_not_found(response)


def test_a_signature_for_another_project_file_answers_404(user, frame_file):
    other = store(ProjectFactory(owner=user).pk, "frames", b"other")
    assert_not_found(Client().get(f"/blob/{frame_file}?sig={sign(other)}"))


def test_the_owner_still_reads_with_a_stale_signature(client: Client, user, frame_file):
    client.force_login(user)
    stale = sign(frame_file, now=time.time() - 3 * 3600)
    assert client.get(f"/blob/{frame_file}?sig={stale}").status_code == 200


def test_another_users_project_answers_404_with_a_token(other_api, frame_file):
    assert_not_found(other_api.get(f"/blob/{frame_file}"))


def test_an_invalid_token_is_anonymous_even_with_a_session(client: Client, user, frame_file):
    client.force_login(user)
    response = client.get(f"/blob/{frame_file}", headers={"Authorization": "Token nope"})
    assert_not_found(response)


def test_a_signed_url_dies_with_its_project(frame_file):
    Project.objects.filter(pk=int(frame_file.split("/")[0])).delete()
    assert_not_found(Client().get(blob_url(frame_file)))


def test_a_missing_file_of_my_project_answers_404(api, user, media_root):
    project = ProjectFactory(owner=user)
    assert_not_found(api.get(f"/blob/{project.pk}/frames/never-stored.png"))


def test_other_methods_answer_405_json(client: Client, user, frame_file):
    client.force_login(user)
    response = client.post(f"/blob/{frame_file}")
    assert response.status_code == 405
    assert response["Allow"] == "GET, HEAD"
    assert "detail" in response.json()


# --------------------------------------------------------------------------- what may be read


@pytest.fixture
def bait(media_root: Path, tmp_path: Path) -> dict[str, Path]:
    """Files a broken name check would serve: at the media root and outside it."""
    inside = media_root / "secret.txt"
    outside = tmp_path / "outside" / "secret.png"
    outside.parent.mkdir()
    inside.write_bytes(b"root secret")
    outside.write_bytes(b"outside secret")
    return {"inside": inside, "outside": outside}


TRAVERSALS = [
    "{pid}/frames/../../secret.txt",
    "{pid}/frames/..%2f..%2fsecret.txt",
    "{pid}/frames/%2e%2e%2f%2e%2e%2fsecret.txt",
    "{pid}/frames/%2E%2E/%2E%2E/secret.txt",
    "{pid}/frames/%252e%252e%252f%252e%252e%252fsecret.txt",
    "{pid}/frames/..",
    "{pid}/frames/..%2f..%2f..%2foutside%2fsecret.png",
    "{pid}/frames//etc/passwd",
    "{pid}/frames/%2fetc%2fpasswd",
    "/etc/passwd",
    "{pid}/frames/..\\..\\secret.txt",
    "{pid}/frames/..%5c..%5csecret.txt",
    "{pid}/frames/{file}%00.png",
    "{pid}/frames/{file}%00",
    "{pid}/frames/" + "a" * 250,
    "{pid}/frames/.hidden",
    "{pid}/frames/{file}/",
    "{pid}/unknown/{file}",
    "{pid}/frames",
    "0{pid}/frames/{file}",
    "+{pid}/frames/{file}",
    "{pid}/frames/{file}%0a",
    "secret.txt",
]


@pytest.mark.parametrize("template", TRAVERSALS)
def test_names_outside_the_scheme_answer_404(api, frame_file, bait, template):
    pid, _, file = frame_file.split("/")
    assert_not_found(api.get("/blob/" + template.format(pid=pid, file=file)))


def test_a_symlink_to_a_file_outside_the_media_root_answers_404(api, frame_file, bait):
    link = bait["inside"].parent / frame_file.rsplit("/", 1)[0] / "link.png"
    link.symlink_to(bait["outside"])
    name = f"{frame_file.rsplit('/', 1)[0]}/link.png"
    assert_not_found(api.get(f"/blob/{name}"))
    assert_not_found(Client().get(blob_url(name)))


def test_a_symlinked_folder_leading_outside_answers_404(api, user, media_root, bait):
    project = ProjectFactory(owner=user)
    (media_root / str(project.pk)).mkdir()
    (media_root / str(project.pk) / "characters").symlink_to(bait["outside"].parent)
    assert_not_found(api.get(f"/blob/{project.pk}/characters/secret.png"))


def test_a_file_of_project_b_under_project_a_answers_404(api, user, other_user, media_root):
    project_a = ProjectFactory(owner=user)
    b_file = store(ProjectFactory(owner=other_user).pk, "frames", b"b's frame")
    b_filename = b_file.rsplit("/", 1)[1]
    assert_not_found(api.get(f"/blob/{project_a.pk}/frames/{b_filename}"))
    # Nor through a link planted in A's folder, though the target is inside the media root.
    (media_root / str(project_a.pk) / "frames").mkdir(parents=True)
    (media_root / str(project_a.pk) / "frames" / b_filename).symlink_to(media_root / b_file)
    assert_not_found(api.get(f"/blob/{project_a.pk}/frames/{b_filename}"))


def test_a_fifo_in_the_media_dir_answers_404_without_hanging(api, user, media_root):
    project = ProjectFactory(owner=user)
    folder = media_root / str(project.pk) / "frames"
    folder.mkdir(parents=True)
    os.mkfifo(folder / "pipe.png")
    assert_not_found(api.get(f"/blob/{project.pk}/frames/pipe.png"))


# --------------------------------------------------------------------------- ranges and caching


SIZE = len(DATA)


@pytest.mark.parametrize(
    ("header", "first", "last"),
    [
        ("bytes=0-99", 0, 99),
        ("bytes=100-199", 100, 199),
        ("bytes=1000-", 1000, SIZE - 1),
        ("bytes=-10", SIZE - 10, SIZE - 1),
        ("bytes=-5000", 0, SIZE - 1),
        ("bytes=1000-99999", 1000, SIZE - 1),
        ("bytes=7-7", 7, 7),
        ("BYTES=3-4", 3, 4),
    ],
)
def test_a_range_answers_206_with_exactly_those_bytes(api, frame_file, header, first, last):
    response = api.get(f"/blob/{frame_file}", headers={"Range": header})
    assert response.status_code == 206
    assert body(response) == DATA[first : last + 1]
    assert response["Content-Range"] == f"bytes {first}-{last}/{SIZE}"
    assert response["Content-Length"] == str(last - first + 1)


@pytest.mark.parametrize("header", [f"bytes={SIZE}-", f"bytes={SIZE}-{SIZE + 10}", "bytes=-0"])
def test_an_unsatisfiable_range_answers_416(api, frame_file, header):
    response = api.get(f"/blob/{frame_file}", headers={"Range": header})
    assert response.status_code == 416
    assert response["Content-Range"] == f"bytes */{SIZE}"
    assert "detail" in response.json()


@pytest.mark.parametrize(
    "header",
    ["bytes=abc", "bytes=5-2", "items=0-5", "bytes=0-1,4-5", "bytes=-", "bytes=0x1-2", "bytes 0-1"],
)
def test_a_malformed_or_multi_range_is_ignored(api, frame_file, header):
    response = api.get(f"/blob/{frame_file}", headers={"Range": header})
    assert response.status_code == 200
    assert body(response) == DATA
    assert not response.has_header("Content-Range")


def test_a_range_with_a_stale_if_range_sends_the_whole_file(api, frame_file):
    etag = api.get(f"/blob/{frame_file}")["ETag"]
    headers = {"Range": "bytes=0-9", "If-Range": '"stale"'}
    assert body(api.get(f"/blob/{frame_file}", headers=headers)) == DATA
    headers["If-Range"] = etag
    assert body(api.get(f"/blob/{frame_file}", headers=headers)) == DATA[:10]


def test_a_matching_if_none_match_answers_304_without_a_body(api, frame_file):
    etag = api.get(f"/blob/{frame_file}")["ETag"]
    for header in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        response = api.get(f"/blob/{frame_file}", headers={"If-None-Match": header})
        assert response.status_code == 304, header
        assert response.content == b""
        assert response["ETag"] == etag


def test_a_different_if_none_match_sends_the_file(api, frame_file):
    response = api.get(f"/blob/{frame_file}", headers={"If-None-Match": '"other"'})
    assert response.status_code == 200
    assert body(response) == DATA


def test_files_of_the_same_size_get_different_etags(api, user, media_root):
    project = ProjectFactory(owner=user)
    first, second = (store(project.pk, "frames", DATA) for _ in range(2))
    assert api.get(f"/blob/{first}")["ETag"] != api.get(f"/blob/{second}")["ETag"]


def test_head_sends_the_headers_of_get_and_no_body(api, frame_file):
    get = api.get(f"/blob/{frame_file}")
    head = api.head(f"/blob/{frame_file}")
    assert head.status_code == 200
    assert body(head) == b""
    for header in ("Content-Length", "Content-Type", "ETag", "Accept-Ranges", "Cache-Control"):
        assert head[header] == get[header]


def test_an_mp4_is_served_as_video_mp4_and_ranges_hit_its_header(api, user, media_root, mp4_bytes):
    name = store(ProjectFactory(owner=user).pk, "videos", mp4_bytes, ".mp4")
    response = api.get(f"/blob/{name}")
    assert response["Content-Type"] == "video/mp4"
    assert body(response) == mp4_bytes
    box_type = api.get(f"/blob/{name}", headers={"Range": "bytes=4-7"})
    assert body(box_type) == b"ftyp"
    tail = api.get(f"/blob/{name}", headers={"Range": "bytes=-100"})
    assert body(tail) == mp4_bytes[-100:]


def test_a_jpeg_is_served_as_image_jpeg(api, user, media_root):
    name = store(ProjectFactory(owner=user).pk, "final", b"\xff\xd8\xff", ".jpg")
    assert api.get(f"/blob/{name}")["Content-Type"] == "image/jpeg"


# --------------------------------------------------------------------------- streaming


def test_the_file_is_streamed_in_fixed_size_chunks(api, user, media_root):
    data = os.urandom(3 * CHUNK_SIZE + 123)
    name = store(ProjectFactory(owner=user).pk, "videos", data, ".mp4")
    response = api.get(f"/blob/{name}")
    assert isinstance(response, StreamingHttpResponse)
    chunks = list(response.streaming_content)
    assert [len(chunk) for chunk in chunks] == [CHUNK_SIZE] * 3 + [123]
    assert b"".join(chunks) == data


def test_under_asgi_the_file_is_streamed_asynchronously(user, media_root):
    data = os.urandom(2 * CHUNK_SIZE + 5)
    name = store(ProjectFactory(owner=user).pk, "videos", data, ".mp4")
    token = Token.objects.create(user=user)

    async def fetch() -> tuple[StreamingHttpResponse, list[bytes]]:
        headers = {"Authorization": f"Token {token.key}", "Range": "bytes=1-"}
        response = await AsyncClient().get(f"/blob/{name}", headers=headers)
        return response, [chunk async for chunk in response.streaming_content]

    response, chunks = async_to_sync(fetch)()
    # A sync iterator would be drained into a list by Django's ASGI handler.
    assert response.is_async
    assert response.status_code == 206
    assert b"".join(chunks) == data[1:]
    assert max(len(chunk) for chunk in chunks) == CHUNK_SIZE


def test_a_signature_is_djangos_salted_hmac_and_follows_the_secret_key(settings):
    name, now = "7/frames/shot-abc.png", 1_800_000_000.0
    expires, mac = sign(name, now=now).split(".")
    reference = salted_hmac("filmstudio.media.blob", f"{name}:{expires}", algorithm="sha256")
    assert mac == reference.hexdigest()[:32]
    assert verify(name, f"{expires}.{mac}", now=now)
    settings.SECRET_KEY = "another secret key, long enough for the checks" * 2
    assert sign(name, now=now) != f"{expires}.{mac}"
    assert not verify(name, f"{expires}.{mac}", now=now)
    reference = salted_hmac("filmstudio.media.blob", f"{name}:{expires}", algorithm="sha256")
    assert sign(name, now=now) == f"{expires}.{reference.hexdigest()[:32]}"
