"""Producer control over the API: takes (list, select), one unit redone with instructions,
what is stale, and a refresh of exactly the stale units."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    extend_schema_view,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from filmstudio.api import reject_unknown_params
from filmstudio.serializers import (
    StrictBooleanField,
    StrictCharField,
    StrictIntegerField,
    StrictSerializer,
)
from generation import services
from generation.events import job_payload
from generation.serializers import JobSerializer
from projects import selectors
from projects.models import Take
from projects.serializers import TakeSerializer
from projects.takes import project_stale_units

Kind = Take.Kind


def _validated(serializer_class, request) -> dict:
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _accepted(job) -> Response:
    return Response(job_payload(job), status=status.HTTP_202_ACCEPTED)


class TakeListApi(ListAPIView):
    serializer_class = TakeSerializer
    kinds: tuple[str, ...] = ()

    def unit_takes(self):
        raise NotImplementedError

    def get_queryset(self):
        takes = self.unit_takes().filter(kind__in=self.kinds)  # 404 before any 400
        reject_unknown_params(self.request, allowed=["kind"])
        kind = self.request.query_params.get("kind")
        if kind is not None:
            if kind not in self.kinds:
                raise serializers.ValidationError(
                    {"kind": [f"One of {', '.join(self.kinds)}; got {kind!r}."]}
                )
            takes = takes.filter(kind=kind)
        return takes.select_related("character", "frame", "project").order_by("-created_at", "-id")


@extend_schema_view(get=extend_schema(summary="A character's portrait takes, newest first"))
class CharacterTakesApi(TakeListApi):
    kinds = (Kind.PORTRAIT,)

    def unit_takes(self):
        return selectors.character_for_user(self.request.user, self.kwargs["character_id"]).takes


@extend_schema_view(
    get=extend_schema(
        parameters=[OpenApiParameter("kind", str, enum=[Kind.KEYFRAME, Kind.CLIP, Kind.LINE])],
        summary="A frame's keyframe, clip and line takes, newest first",
    )
)
class FrameTakesApi(TakeListApi):
    kinds = (Kind.KEYFRAME, Kind.CLIP, Kind.LINE)

    def unit_takes(self):
        return selectors.frame_for_user(self.request.user, self.kwargs["frame_id"]).takes


@extend_schema_view(
    get=extend_schema(
        parameters=[OpenApiParameter("kind", str, enum=[Kind.FILM])],
        summary="The project's final cuts, newest first",
    )
)
class ProjectTakesApi(TakeListApi):
    kinds = (Kind.FILM,)

    def unit_takes(self):
        return selectors.project_for_user(self.request.user, self.kwargs["project_id"]).takes


class TakeSelectApi(APIView):
    @extend_schema(request=None, responses=TakeSerializer, summary="Make a take current")
    def post(self, request, take_id: int):
        take = get_object_or_404(
            Take.objects.filter(project__owner=request.user)
            if request.user.is_authenticated
            else Take.objects.none(),
            pk=take_id,
        )
        take = services.take_select(take=take)
        return Response(TakeSerializer(take).data)


class PortraitJobRequest(StrictSerializer):
    character_id = StrictIntegerField(min_value=1)
    instructions = StrictCharField(
        required=False, allow_blank=True, max_length=2000, default="", trim_whitespace=False
    )


class KeyframeJobRequest(StrictSerializer):
    frame_id = StrictIntegerField(min_value=1)
    instructions = StrictCharField(
        required=False, allow_blank=True, max_length=2000, default="", trim_whitespace=False
    )


class PortraitGenerationApi(APIView):
    @extend_schema(
        request=PortraitJobRequest, responses={202: JobSerializer}, summary="Redo one portrait"
    )
    def post(self, request):
        data = _validated(PortraitJobRequest, request)
        character = selectors.character_for_user(request.user, data["character_id"])
        job = services.start_portrait_generation(
            character=character, instructions=data["instructions"]
        )
        return _accepted(job)


class KeyframeGenerationApi(APIView):
    @extend_schema(
        request=KeyframeJobRequest, responses={202: JobSerializer}, summary="Redo one keyframe"
    )
    def post(self, request):
        data = _validated(KeyframeJobRequest, request)
        frame = selectors.frame_for_user(request.user, data["frame_id"])
        job = services.start_keyframe_generation(frame=frame, instructions=data["instructions"])
        return _accepted(job)


StaleUnit = inline_serializer(
    "StaleUnit",
    {
        "type": serializers.ChoiceField(choices=["portrait", "keyframe", "clip", "line", "film"]),
        "id": serializers.IntegerField(),
        "reasons": serializers.ListField(child=serializers.CharField()),
    },
)
StaleReport = inline_serializer(
    "StaleReport",
    {"units": serializers.ListField(child=StaleUnit), "estimate": serializers.DictField()},
)


def stale_report(project) -> dict:
    units = project_stale_units(project)
    counts: dict[str, int] = {}
    for unit in units:
        counts[unit["type"]] = counts.get(unit["type"], 0) + 1
    # Prices come with the cost work; until then the estimate counts the paid calls.
    return {
        "units": units,
        "estimate": {
            "total_usd": None,
            "items": [{"stage": kind, "count": n} for kind, n in counts.items()],
        },
    }


class ProjectStaleApi(APIView):
    @extend_schema(responses=StaleReport, summary="Units whose inputs changed since their take")
    def get(self, request, project_id: int):
        return Response(stale_report(selectors.project_for_user(request.user, project_id)))


class RefreshRequest(StrictSerializer):
    dry_run = StrictBooleanField(required=False, default=False)


class ProjectRefreshApi(APIView):
    @extend_schema(
        request=RefreshRequest,
        responses={202: JobSerializer, 200: StaleReport},
        summary="Regenerate exactly the stale units, then re-cut (dry_run: only say what)",
    )
    def post(self, request, project_id: int):
        project = selectors.project_for_user(request.user, project_id)  # 404 before 400
        data = _validated(RefreshRequest, request)
        if data["dry_run"]:
            return Response(stale_report(project))
        return _accepted(services.refresh_start(project=project))
