from contextlib import contextmanager

from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.db import transaction
from django.http import StreamingHttpResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import Throttled
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from director import selectors, services
from director.models import DirectorMessage, DirectorSession
from director.pages import PAGE_IDS, PAGES, Page
from director.streaming import TURN_EVENTS, TurnRelay
from director.tools import TOOL_KINDS, page_tools
from director.turns import start_turn
from filmstudio.serializers import StrictCharField, StrictIntegerField, StrictSerializer
from filmstudio.streams import release_when_done, stream_slot, too_many_streams_message
from projects import selectors as project_selectors

# ------------------------------------------------------------------ pages


class DirectorToolSerializer(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField()
    kind = serializers.ChoiceField(
        choices=TOOL_KINDS, help_text="`ui`: carried out by the client (result null)."
    )


class DirectorPageSerializer(serializers.Serializer):
    id = serializers.CharField()
    title = serializers.CharField()
    description = serializers.CharField()
    tools = DirectorToolSerializer(many=True)


def page_payload(page: Page) -> dict:
    tools = page_tools(page)
    return {
        "id": page.id,
        "title": page.title,
        "description": page.description,
        "tools": [{"name": t.name, "description": t.description, "kind": t.kind} for t in tools],
    }


class DirectorPagesApi(APIView):
    @extend_schema(
        responses=DirectorPageSerializer(many=True), summary="The director's page contexts"
    )
    def get(self, request):
        return Response([page_payload(page) for page in PAGES.values()])


# ------------------------------------------------------------------ sessions


class DirectorFunctionCallSerializer(serializers.Serializer):
    name = serializers.CharField()
    args = serializers.DictField()
    result = serializers.DictField(
        allow_null=True,
        required=False,
        help_text="Tool messages only: the tool's result, `{error}` when it refused, "
        "null for UI tools.",
    )

    def to_representation(self, instance: dict) -> dict:
        data = super().to_representation(instance)
        if "result" not in instance:  # an assistant's call: its result is on the tool message
            del data["result"]
        return data


class DirectorMessageSerializer(serializers.ModelSerializer):
    function_calls = serializers.ListField(child=DirectorFunctionCallSerializer())

    class Meta:
        model = DirectorMessage
        fields = ["role", "text", "function_calls", "created_at"]


class DirectorSessionSerializer(serializers.ModelSerializer):
    project_id = serializers.IntegerField(allow_null=True)
    messages = DirectorMessageSerializer(many=True)

    class Meta:
        model = DirectorSession
        fields = ["id", "project_id", "page", "messages"]


class DirectorSessionApi(APIView):
    @extend_schema(
        responses=DirectorSessionSerializer, summary="A director session and its messages"
    )
    def get(self, request, session_id: int):
        session = selectors.session_for_user(request.user, session_id)
        return Response(DirectorSessionSerializer(session).data)


# ------------------------------------------------------------------ the stream


class DirectorStreamSerializer(StrictSerializer):
    page = serializers.ChoiceField(choices=PAGE_IDS)
    project_id = StrictIntegerField(min_value=1, required=False, allow_null=True)
    session_id = StrictIntegerField(
        min_value=1, required=False, allow_null=True, help_text="Continue this session."
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Built here, not at import, so the limit follows the setting.
        self.fields["message"] = StrictCharField(max_length=settings.DIRECTOR_MAX_MESSAGE_CHARS)


class DirectorEventSerializer(serializers.Serializer):
    """One Server-Sent Event of a turn, as the schema of `text/event-stream` describes each."""

    event = serializers.ChoiceField(choices=TURN_EVENTS)
    id = serializers.CharField(
        required=False, help_text="`director-{session_id}:{n}`: its id on the session channel."
    )
    data = serializers.CharField(
        help_text="JSON: `start {session_id, turn_id}`, `message {delta}`, "
        "`function_call {name, args, result}`, `confirm {token, summary, estimate, name, args, "
        "expires_at}`, `complete {text}`, `error {message}`."
    )


EVENTS_DOC = """Server-Sent Events, in this order:
`start {session_id, turn_id}`, then any number of `message {delta}` and
`function_call {name, args, result}` (`result` null for UI tools the client carries out),
then `complete {text}` or `error {message}`. A call that would spend money or replace content
is not carried out: its result is `{confirmation_required: true, summary, estimate}` and a
`confirm {token, summary, estimate, name, args, expires_at}` event follows it; `POST
/api/director/confirm` with that token carries it out. Each event's `id` is its id on the session's
channel: after a dropped connection, resume on `GET /api/director/sessions/{id}/events`
with `Last-Event-ID`. Lines starting with `:` are keep-alive comments."""


def event_stream_response(request, relay: TurnRelay, release) -> StreamingHttpResponse:
    # Under ASGI, Django reads a sync iterator to its end before sending a byte (and holds a
    # thread meanwhile): ASGI gets the async iterator. WSGI servers and Django's test Client
    # read the same relay through a blocking one.
    is_asgi = isinstance(request._request, ASGIRequest)
    response = StreamingHttpResponse(
        relay.stream() if is_asgi else iter(relay), content_type="text/event-stream"
    )
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return release_when_done(response, release)


@contextmanager
def open_stream_slot(user):
    """One of the user's open-stream places (`filmstudio.streams`), given back if the request is
    refused before its stream starts; else the stream gives it back when it ends."""
    release = stream_slot(user)
    if release is None:
        raise Throttled(detail=too_many_streams_message())
    try:
        yield release
    except BaseException:
        release()
        raise


class DirectorStreamApi(APIView):
    def perform_content_negotiation(self, request, force=False):
        # Everything DRF renders here is a JSON error (the stream bypasses rendering), so an
        # `Accept: text/event-stream` client gets that JSON instead of a 406.
        renderer = JSONRenderer()
        return renderer, renderer.media_type

    @extend_schema(
        request=DirectorStreamSerializer,
        responses={
            (200, "text/event-stream"): OpenApiResponse(
                DirectorEventSerializer, description=EVENTS_DOC
            )
        },
        summary="Ask the director: one turn, streamed",
        description="What can be refused before streaming is a JSON error: an empty or "
        "over-long message or an unknown page (400), someone else's project or session (404), "
        "a turn still running in the session (409), too many turns per minute or too many "
        "streams open (429).",
    )
    def post(self, request):
        serializer = DirectorStreamSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        user = request.user
        project = session = None
        if data.get("project_id"):
            project = project_selectors.project_for_user(user, data["project_id"])
        if data.get("session_id"):
            session = selectors.session_for_user(user, data["session_id"])
        with open_stream_slot(user) as release:
            turn = services.turn_start(
                user=user,
                page=data["page"],
                message=data["message"],
                project=project,
                session=session,
            )
            inline = transaction.get_connection().in_atomic_block
            return event_stream_response(request, start_turn(turn, inline=inline), release)


# ------------------------------------------------------------------ confirmations


class DirectorConfirmSerializer(StrictSerializer):
    session_id = StrictIntegerField(min_value=1, max_value=2**63 - 1)
    token = StrictCharField(max_length=200, help_text="From the turn's `confirm` event.")


class DirectorConfirmApi(DirectorStreamApi):
    @extend_schema(
        request=DirectorConfirmSerializer,
        responses={
            (200, "text/event-stream"): OpenApiResponse(
                DirectorEventSerializer,
                description="The rest of the turn: `start`, the confirmed call's "
                "`function_call {name, args, result}`, a `message`, then `complete` (or "
                "`error`).",
            )
        },
        summary="Confirm a director action that spends money or replaces content",
        description="Carries out the one call the token (from a `confirm` event) stands for, "
        "as a new turn of the session, streamed like `/api/director/stream`. A token is "
        "single-use, bound to its user, session and the exact tool and arguments, and expires "
        "10 minutes after it was issued. Refused as JSON before streaming: someone else's "
        "session, or a token of another session (404); an unknown token (400); a token "
        "already used or expired (409); a turn still running in the session (409); too many "
        "turns per minute or too many streams open (429).",
    )
    def post(self, request):
        serializer = DirectorConfirmSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        session = selectors.session_for_user(request.user, data["session_id"])
        with open_stream_slot(request.user) as release:
            turn, confirmation = services.confirmation_redeem(session=session, token=data["token"])
            inline = transaction.get_connection().in_atomic_block
            relay = start_turn(turn, inline=inline, confirmation=confirmation)
            return event_stream_response(request, relay, release)
