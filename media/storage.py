"""Media names and storage helpers. App code talks to Django's storage API, never to paths."""

import io
import logging
import re
import uuid
from collections.abc import Iterable, Iterator

from django.core.files import File
from django.core.files.storage import default_storage

from media.signing import MEDIA_TYPES

logger = logging.getLogger(__name__)
_PROJECT_FOLDER = re.compile(r"[1-9][0-9]{0,17}")


def media_name(project_id: int, media_type: str, stem: str, suffix: str) -> str:
    """A generated (never user-supplied) name: `{project_id}/{type}/{stem}-{random}{suffix}`."""
    if media_type not in MEDIA_TYPES:
        raise ValueError(f"unknown media type {media_type!r}")
    return f"{project_id}/{media_type}/{stem}-{uuid.uuid4().hex[:12]}{suffix}"


def delete_name(name: str) -> None:
    if name:
        default_storage.delete(name)


def stored_project_ids() -> list[int]:
    """Ids of the project folders in storage, whether or not the project still exists."""
    try:
        folders, _ = default_storage.listdir("")
    except FileNotFoundError:
        return []
    return sorted(int(folder) for folder in folders if _PROJECT_FOLDER.fullmatch(folder))


def project_file_names(project_id: int) -> list[str]:
    names = []
    for media_type in MEDIA_TYPES:
        folder = f"{project_id}/{media_type}"
        try:
            _, files = default_storage.listdir(folder)
        except FileNotFoundError:
            continue
        names.extend(f"{folder}/{name}" for name in files)
    return names


def delete_project_files(project_id: int) -> int:
    names = project_file_names(project_id)
    for name in names:
        default_storage.delete(name)
    logger.info("deleted %s media files of project %s", len(names), project_id)
    return len(names)


class _ChunkReader(io.RawIOBase):
    """A read-only, unseekable file over an iterable of byte chunks."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks: Iterator[bytes] = iter(chunks)
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        while not self._pending:
            try:
                self._pending = memoryview(next(self._chunks))
            except StopIteration:
                return 0
        count = min(len(buffer), len(self._pending))
        buffer[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count


def save_whole(name: str, content: File) -> str:
    """Store `content` under `name`, or nothing: a write that fails part-way (a full disk)
    leaves no truncated file behind to take the space a retry needs. Returns the name."""
    name = default_storage.get_available_name(name)
    try:
        return default_storage.save(name, content)
    except BaseException:
        default_storage.delete(name)  # what was written before the failure
        raise


def save_stream(name: str, chunks: Iterable[bytes]) -> str:
    """Store what `chunks` yields under `name` (local or S3) as it comes: never whole in memory.
    Returns the name the storage chose."""
    name = default_storage.get_available_name(name)
    reader = io.BufferedReader(_ChunkReader(chunks), buffer_size=1 << 20)
    try:
        return default_storage.save(name, File(reader, name=name))
    except BaseException:
        default_storage.delete(name)  # what was written before the stream broke
        raise


def read_chunks(name: str, size: int = 1 << 20) -> Iterator[bytes]:
    """A stored file, chunk by chunk; opened on the first read, closed after the last."""
    with default_storage.open(name, "rb") as handle:
        while chunk := handle.read(size):
            yield chunk
