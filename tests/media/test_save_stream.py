"""media.storage.save_stream: chunks stored as they come, locally and in S3 (moto on loopback);
a stream that breaks leaves no file behind."""

import pytest
from django.core.files.storage import default_storage

from media.storage import media_name, read_chunks, save_stream
from tests.media.test_s3 import bucket, keys, s3_endpoint  # noqa: F401 (fixtures)

pytestmark = pytest.mark.django_db


def chunks(count: int, size: int):
    for index in range(count):
        yield bytes([index % 251]) * size


def expected(count: int, size: int) -> bytes:
    return b"".join(chunks(count, size))


def test_chunks_of_any_size_are_stored_in_order(media_root):
    # odd sizes on both sides of the reader's buffer (1 MiB) and Django's copy chunk (64 KiB)
    parts = [b"", b"a", b"b" * 70_000, b"", b"c" * (1 << 20) + b"d", b"e" * 3]
    name = save_stream(media_name(1, "final", "export", ".zip"), iter(parts))
    assert name.startswith("1/final/export-")
    assert (media_root / name).read_bytes() == b"".join(parts)
    assert b"".join(read_chunks(name, size=1000)) == b"".join(parts)


def test_a_stream_that_breaks_leaves_nothing(media_root):
    def broken():
        yield b"x" * 100_000
        raise OSError("the source went away")

    wanted = media_name(1, "final", "export", ".zip")
    with pytest.raises(OSError, match="went away"):
        save_stream(wanted, broken())
    assert not default_storage.exists(wanted)
    assert list((media_root / "1" / "final").iterdir()) == []


def test_it_streams_into_s3_too(bucket):  # noqa: F811 (the fixture)
    name = save_stream(media_name(2, "final", "export", ".zip"), chunks(40, 200_000))
    assert keys(bucket) == {name}
    assert b"".join(read_chunks(name)) == expected(40, 200_000)


def test_a_broken_stream_leaves_nothing_in_s3(bucket):  # noqa: F811 (the fixture)
    def broken():
        yield from chunks(3, 100_000)
        raise OSError("the source went away")

    with pytest.raises(OSError):
        save_stream(media_name(2, "final", "export", ".zip"), broken())
    assert keys(bucket) == set()
