from contextlib import contextmanager

from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.db import transaction
from django.http import StreamingHttpResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.exceptions import Throttled
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from director import selectors, services
from director.models import AgentRun, DirectorMessage, DirectorSession
from director.pages import PAGE_IDS, PAGES, Page
from director.runs import (
    CHECKPOINT_KINDS,
    RUN_EVENTS,
    checkpoint_payload,
    run_spent,
    runs_spent,
)
from director.services import DECISIONS
from director.streaming import TURN_EVENTS, TurnRelay
from director.tools import TOOL_KINDS, page_tools
from director.turns import start_turn
from filmstudio.serializers import StrictCharField, StrictIntegerField, StrictSerializer
from filmstudio.streams import release_when_done, stream_slot, too_many_streams_message
from projects import selectors as project_selectors
from projects.models import CHECKPOINTS
from projects.serializers import BudgetField

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


# ------------------------------------------------------------------ agent runs


class AgentRunRequest(StrictSerializer):
    goal = StrictCharField(
        min_length=1, max_length=2000, help_text="The film to make, in a sentence or a few."
    )
    # The most the run may spend, in USD (0 to MAX_BUDGET_USD, like a project's): the
    # project's budget becomes what it has spent plus this (or stays, if lower).
    budget_usd = BudgetField()
    checkpoints = serializers.ListField(
        child=serializers.ChoiceField(choices=CHECKPOINTS),
        required=False,
        help_text="Where the run stops for a decision besides `cast` (always): `storyboard` "
        "(the default) also stops before the clips are paid for. Any paid step the run would "
        "take by itself over AGENT_CONFIRM_ABOVE_USD stops at a `spend` checkpoint.",
    )


class AgentRunDecisionRequest(StrictSerializer):
    decision = serializers.ChoiceField(choices=DECISIONS)
    notes = StrictCharField(
        max_length=2000,
        required=False,
        allow_blank=True,
        help_text="Required with `revise`: what to change (e.g. “redo Mara's portrait: older”).",
    )


class AgentRunCheckpointSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=CHECKPOINT_KINDS)
    summary = serializers.CharField()
    estimate = serializers.DictField(help_text="The quote of what approving starts.")


class AgentRunEventSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="pk")
    type = serializers.ChoiceField(choices=RUN_EVENTS)
    data = serializers.DictField()
    created_at = serializers.DateTimeField()


class AgentRunSerializer(serializers.ModelSerializer):
    project_id = serializers.IntegerField()
    budget_usd = serializers.DecimalField(
        max_digits=12, decimal_places=2, allow_null=True, coerce_to_string=False
    )
    checkpoints = serializers.ListField(child=serializers.CharField())
    checkpoint = serializers.SerializerMethodField()
    spent_usd = serializers.SerializerMethodField()
    notes = serializers.ListField(
        child=serializers.DictField(), help_text="Every decision: `{kind, decision, notes, at}`."
    )
    events_url = serializers.SerializerMethodField()

    class Meta:
        model = AgentRun
        fields = [
            "id",
            "project_id",
            "goal",
            "status",
            "planner",
            "budget_usd",
            "spent_usd",
            "checkpoints",
            "checkpoint",
            "notes",
            "error",
            "advances",
            "created_at",
            "updated_at",
            "heartbeat_at",
            "finished_at",
            "events_url",
        ]

    @extend_schema_field(AgentRunCheckpointSerializer(allow_null=True))
    def get_checkpoint(self, run: AgentRun) -> dict | None:
        return checkpoint_payload(run)

    def get_spent_usd(self, run: AgentRun) -> float:
        spent = self.context.get("spent")  # a list's, counted for all its runs at once
        return float(spent[run.pk] if spent is not None else run_spent(run))

    def get_events_url(self, run: AgentRun) -> str:
        return f"/api/agent-runs/{run.pk}/events"


class AgentRunDetailSerializer(AgentRunSerializer):
    events = serializers.SerializerMethodField()

    class Meta(AgentRunSerializer.Meta):
        fields = [*AgentRunSerializer.Meta.fields, "events"]

    @extend_schema_field(AgentRunEventSerializer(many=True))
    def get_events(self, run: AgentRun) -> list:
        return AgentRunEventSerializer(selectors.run_events(run), many=True).data


RUN_EVENTS_DOC = (
    "Events (`GET /api/agent-runs/{id}/events`, Server-Sent Events replayable with "
    "Last-Event-ID; the latest 200 also in `events` here): `status {status, project_status}`, "
    "`log {text, planner}`, `action {name, args, result}` (a tool call and its result, "
    "`{error}` when refused; `held: true` when it waits at a spend checkpoint), "
    "`checkpoint {kind, summary, estimate}`, `decision {kind, decision, notes}`, "
    "`complete {final_video_url, final_duration, spent_usd}`, `error {message}`; each also "
    "carries `run_id` and `seq` (the event's id in `events`)."
)


class ProjectAgentRunsApi(APIView):
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "jobs"

    def get_throttles(self):
        return super().get_throttles() if self.request.method == "POST" else []

    @extend_schema(
        responses=AgentRunSerializer(many=True), summary="A project's agent runs, newest first"
    )
    def get(self, request, project_id: int):
        project = project_selectors.project_for_user(request.user, project_id)
        runs = selectors.runs_for_user(request.user).filter(project=project)
        runs = list(runs[:50])
        spent = runs_spent(project_id, [run.pk for run in runs])
        return Response(AgentRunSerializer(runs, many=True, context={"spent": spent}).data)

    @extend_schema(
        request=AgentRunRequest,
        responses={
            201: AgentRunSerializer,
            409: OpenApiResponse(description="The project already has an active run."),
        },
        summary="Start an agent run: the director makes the film, stopping at checkpoints",
        description="The director plans from the goal and runs the pipeline through the same "
        "services as every client (Gemini with native tool calls when it has keys, else the "
        "offline rule-based planner), stopping with status `awaiting_decision` and a "
        "`checkpoint` event at the cast (always), the storyboard (unless left out of "
        "`checkpoints`) and any paid step over AGENT_CONFIRM_ABOVE_USD. Its state is in the "
        "database: it survives worker and web restarts. " + RUN_EVENTS_DOC,
    )
    def post(self, request, project_id: int):
        project = project_selectors.project_for_user(request.user, project_id)
        serializer = AgentRunRequest(data=request.data)
        serializer.is_valid(raise_exception=True)
        run = services.run_start(user=request.user, project=project, **serializer.validated_data)
        return Response(AgentRunSerializer(run).data, status=status.HTTP_201_CREATED)


class AgentRunApi(APIView):
    @extend_schema(
        responses=AgentRunDetailSerializer, summary="An agent run and its log",
        description=RUN_EVENTS_DOC,
    )  # fmt: skip
    def get(self, request, run_id: int):
        return Response(AgentRunDetailSerializer(selectors.run_for_user(request.user, run_id)).data)

    @extend_schema(
        request=None,
        responses={200: AgentRunSerializer, 409: OpenApiResponse(description="Already ended.")},
        summary="Cancel an agent run and the jobs it started",
    )
    def delete(self, request, run_id: int):
        run = services.run_cancel(run=selectors.run_for_user(request.user, run_id))
        return Response(AgentRunSerializer(run).data)


class AgentRunDecideApi(APIView):
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "jobs"

    @extend_schema(
        request=AgentRunDecisionRequest,
        responses={
            200: AgentRunSerializer,
            409: OpenApiResponse(description="The run awaits no decision."),
        },
        summary="Answer an agent run's checkpoint: approve, or revise with notes",
        description="`approve` carries out the checkpoint (approves the cast, the storyboard, "
        "or the held paid step) through the services; `revise` has the director act on "
        "`notes` (e.g. redo one character's portrait) and ask again at the same checkpoint "
        "with a fresh `checkpoint` event.",
    )
    def post(self, request, run_id: int):
        run = selectors.run_for_user(request.user, run_id)
        serializer = AgentRunDecisionRequest(data=request.data)
        serializer.is_valid(raise_exception=True)
        run = services.run_decide(run=run, **serializer.validated_data)
        return Response(AgentRunSerializer(run).data)
