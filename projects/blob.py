"""`/blob/{project_id}/{type}/{file}`: a stored file for its owner or a signed URL, else 404."""

import asyncio
import mimetypes
import os
import re
import stat
from collections.abc import AsyncIterator, Iterator
from typing import BinaryIO

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import SuspiciousFileOperation
from django.core.files.storage import FileSystemStorage, default_storage
from django.core.handlers.asgi import ASGIRequest
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseNotModified,
    HttpResponseRedirect,
    JsonResponse,
    StreamingHttpResponse,
)
from django.utils.http import parse_etags
from django.views.decorators.csrf import csrf_exempt
from rest_framework.exceptions import AuthenticationFailed

from filmstudio.api import json_not_found
from filmstudio.auth import TokenAuthentication
from media.signing import MEDIA_TYPES, hash_name, verify
from projects.models import Project
from projects.selectors import projects_for_user

CHUNK_SIZE = 64 * 1024
# ASCII-only classes: `\d` and `\w` would admit other scripts' digits and letters.
_MEDIA_NAME = re.compile(
    r"(?P<project_id>[1-9][0-9]{0,17})/(?P<media_type>[a-z]+)/[A-Za-z0-9][A-Za-z0-9._-]{0,200}"
)
_BYTE_RANGE = re.compile(r"bytes=([0-9]{0,18})-([0-9]{0,18})", re.IGNORECASE)


class RangeNotSatisfiable(Exception):
    pass


def media_project_id(name: str) -> int | None:
    """The project id of a well-formed `{project_id}/{type}/{file}` name, else None."""
    match = _MEDIA_NAME.fullmatch(name)
    if not match or match["media_type"] not in MEDIA_TYPES or ".." in name:
        return None
    return int(match["project_id"])


def byte_range(header: str, size: int) -> tuple[int, int] | None:
    """Inclusive (first, last) of a single `bytes=` range; None means send the whole file.

    RFC 7233 lets a server ignore a malformed or multi-range header, so those give None.
    """
    match = _BYTE_RANGE.fullmatch(header.strip())
    if not match or match.groups() == ("", ""):
        return None
    first, last = match.groups()
    if not first:
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable
        return max(0, size - suffix), size - 1
    start = int(first)
    if last and int(last) < start:
        return None
    if start >= size:
        raise RangeNotSatisfiable
    end = min(int(last), size - 1) if last else size - 1
    return start, end


def _request_user(request: HttpRequest) -> AbstractBaseUser | AnonymousUser:
    try:
        authenticated = TokenAuthentication().authenticate(request)
    except AuthenticationFailed:
        return AnonymousUser()
    return authenticated[0] if authenticated else request.user


def _may_read(request: HttpRequest, name: str, project_id: int) -> bool:
    signature = request.GET.get("sig", "")
    if signature and verify(name, signature):
        # A deleted project's files are gone for everyone, even if a sweep has not run yet.
        return Project.objects.filter(pk=project_id).exists()
    # The owner is served even with a stale sig, e.g. a studio page left open past expiry.
    return projects_for_user(_request_user(request)).filter(pk=project_id).exists()


def _open_local(name: str) -> BinaryIO | None:
    """The stored file itself, never something a symlink or `..` leads to; None if absent."""
    try:
        path = default_storage.path(name)
    except SuspiciousFileOperation:
        return None
    root = os.path.realpath(default_storage.location)
    real = os.path.realpath(path)
    # Equality (not mere containment) also refuses a link to another project's file.
    if real != os.path.join(root, *name.split("/")):
        return None
    try:
        # NONBLOCK: a FIFO planted in the media dir must not hang the worker.
        fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    file = os.fdopen(fd, "rb")
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        file.close()
        return None
    return file


class FileChunks:
    """`length` bytes of an open file from `start`, read CHUNK_SIZE at a time."""

    def __init__(self, file: BinaryIO, start: int, length: int) -> None:
        file.seek(start)
        self._file = file
        self._remaining = length

    def read_chunk(self) -> bytes:
        chunk = self._file.read(min(CHUNK_SIZE, self._remaining))
        self._remaining -= len(chunk)
        return chunk

    def close(self) -> None:
        # StreamingHttpResponse calls this when the response is closed.
        self._file.close()


class SyncFileChunks(FileChunks):
    def __iter__(self) -> Iterator[bytes]:
        while chunk := self.read_chunk():
            yield chunk


class AsyncFileChunks(FileChunks):
    # Under ASGI Django drains a synchronous iterator (FileResponse too) into a list
    # before sending, which would hold a whole film in memory.
    async def __aiter__(self) -> AsyncIterator[bytes]:
        while chunk := await asyncio.to_thread(self.read_chunk):
            yield chunk


def _etag_matches(header: str, etag: str) -> bool:
    tags = parse_etags(header)
    return "*" in tags or etag in (tag.removeprefix("W/") for tag in tags)


def _requested_range(request: HttpRequest, etag: str, size: int) -> tuple[int, int] | None:
    header = request.headers.get("Range")
    if request.method != "GET" or not header:
        return None
    if_range = request.headers.get("If-Range")
    if if_range is not None and if_range != etag:
        return None
    return byte_range(header, size)


def _serve_local(request: HttpRequest, file: BinaryIO, name: str) -> HttpResponse:
    info = os.fstat(file.fileno())
    size = info.st_size
    etag = f'"{hash_name(name, size, info.st_mtime_ns)}"'
    headers = {
        "ETag": etag,
        "Accept-Ranges": "bytes",
        "Cache-Control": f"private, max-age={settings.BLOB_URL_MAX_AGE}",
    }
    if _etag_matches(request.headers.get("If-None-Match", ""), etag):
        file.close()
        return HttpResponseNotModified(headers=headers)
    try:
        requested = _requested_range(request, etag, size)
    except RangeNotSatisfiable:
        file.close()
        return JsonResponse(
            {"detail": "Range not satisfiable."},
            status=416,
            headers={**headers, "Content-Range": f"bytes */{size}"},
        )
    start, end = requested or (0, size - 1)
    headers["Content-Type"] = mimetypes.guess_type(name)[0] or "application/octet-stream"
    headers["Content-Length"] = str(end - start + 1)
    if requested:
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    status = 206 if requested else 200
    if request.method == "HEAD":
        file.close()
        return HttpResponse(status=status, headers=headers)
    chunks_class = AsyncFileChunks if isinstance(request, ASGIRequest) else SyncFileChunks
    chunks = chunks_class(file, start, end - start + 1)
    return StreamingHttpResponse(chunks, status=status, headers=headers)


def _redirect_to_remote(request: HttpRequest, name: str) -> HttpResponse:
    if not default_storage.exists(name):
        return json_not_found(request)
    response = HttpResponseRedirect(default_storage.url(name))
    # The presigned target expires on its own schedule; a cached redirect would outlive it.
    response["Cache-Control"] = "private, no-store"
    return response


@csrf_exempt
def blob(request: HttpRequest, name: str) -> HttpResponse:
    if request.method not in ("GET", "HEAD"):
        return JsonResponse(
            {"detail": f'Method "{request.method}" not allowed.'},
            status=405,
            headers={"Allow": "GET, HEAD"},
        )
    project_id = media_project_id(name)
    if project_id is None or not _may_read(request, name, project_id):
        return json_not_found(request)
    if not isinstance(default_storage, FileSystemStorage):
        return _redirect_to_remote(request, name)
    file = _open_local(name)
    if file is None:
        return json_not_found(request)
    return _serve_local(request, file, name)
