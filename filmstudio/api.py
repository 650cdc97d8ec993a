"""Shared API plumbing: errors, pagination, strict query params, slash-tolerant routes."""

import math
import re
from collections.abc import Iterable

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import JsonResponse
from django.urls import URLPattern, path
from rest_framework import exceptions, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from filmstudio.exceptions import BudgetExceeded, ConflictError, LimitExceeded, RateLimited


def exception_handler(exc, context):
    if isinstance(exc, BudgetExceeded):
        body = {"detail": exc.message, "estimate": exc.estimate}
        return Response(body, status=status.HTTP_409_CONFLICT)
    if isinstance(exc, ConflictError):
        return Response({"detail": exc.message}, status=status.HTTP_409_CONFLICT)
    if isinstance(exc, LimitExceeded):
        headers = None
        if isinstance(exc, RateLimited):
            headers = {"Retry-After": str(max(1, math.ceil(exc.retry_after)))}
        return Response(
            {"detail": exc.message}, status=status.HTTP_429_TOO_MANY_REQUESTS, headers=headers
        )
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(
            exc.message_dict if hasattr(exc, "error_dict") else {"detail": exc.messages}
        )
    return drf_exception_handler(exc, context)


# An id in a query: ASCII digits, few enough for a bigint (str.isdigit() accepts "²", and a
# longer number would be a database error instead of a 400).
ID = re.compile(r"[0-9]{1,15}")


def parse_id(value: str) -> int | None:
    return int(value) if ID.fullmatch(value) else None


def _positive_int(value: str, name: str, maximum: int | None = None) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise exceptions.ValidationError({name: ["A positive integer is required."]}) from None
    if number < 1 or (maximum is not None and number > maximum):
        limit = f" between 1 and {maximum}" if maximum else ""
        raise exceptions.ValidationError({name: [f"Must be an integer{limit}."]})
    return number


class Pagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200

    def paginate_queryset(self, queryset, request, view=None):
        # Bad paging input is a client error with a message, never a bare 404.
        params = request.query_params
        if "page" in params:
            _positive_int(params["page"], "page")
        if self.page_size_query_param in params:
            _positive_int(params["page_size"], "page_size", self.max_page_size)
        try:
            return super().paginate_queryset(queryset, request, view)
        except exceptions.NotFound:
            raise exceptions.ValidationError({"page": ["That page contains no results."]}) from None


def reject_unknown_params(request, allowed: Iterable[str]) -> None:
    unknown = sorted(set(request.query_params) - set(allowed) - {"page", "page_size", "format"})
    if unknown:
        raise exceptions.ValidationError({name: ["Unknown query parameter."] for name in unknown})


def both_slashes(route: str, view, name: str) -> list[URLPattern]:
    """The contract answers every path with and without a trailing slash."""
    return [path(route, view, name=name), path(f"{route}/", view)]


def drop_trailing_slash_duplicates(endpoints):
    """Keep one entry per path in the OpenAPI document: the slash-less form."""
    return [e for e in endpoints if not e[0].endswith("/") or e[0] == "/"]


def json_not_found(request, exception=None):
    return JsonResponse({"detail": "Not found."}, status=404)


def json_server_error(request):
    return JsonResponse({"detail": "Internal server error."}, status=500)


_ERRORS = {
    "400": "Invalid input: `{detail}` or `{field: [messages]}`.",
    "401": "Not authenticated.",
    "404": "Not found, or not yours.",
    "409": "Conflicts with the pipeline's state; `detail` says why.",
    "413": "Request body over the size limit.",
    "429": "Too many requests.",
}


def document_error_responses(result, generator, request, public):
    """Every operation documents the JSON error bodies it may answer."""
    error = {"$ref": "#/components/schemas/Error"}
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = {
        "type": "object",
        "description": "`detail` for general errors, or one key per invalid field (a list of "
        "messages; a field the request named `detail` is reported the same way).",
        "properties": {
            "detail": {
                "oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]
            }
        },
        "additionalProperties": True,
    }
    for path_item in result.get("paths", {}).values():
        for method, operation in path_item.items():
            codes = ["400", "401", "404", "429"]
            if method in {"post", "patch", "put", "delete"}:
                codes += ["409", "413"]
            responses = operation.setdefault("responses", {})
            for code in codes:
                responses.setdefault(
                    code,
                    {
                        "description": _ERRORS[code],
                        "content": {"application/json": {"schema": error}},
                    },
                )
    return result
