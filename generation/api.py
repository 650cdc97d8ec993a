from django.http import Http404, HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.generics import GenericAPIView, ListAPIView
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from filmstudio.api import parse_id, reject_unknown_params
from generation import services, sound
from generation.models import GenerationJob
from generation.rates import parse_day, rate_card
from generation.selectors import (
    job_for_user,
    job_quote,
    jobs_for_user,
    project_estimate,
    project_spend,
    project_stale_report,
    queue_status,
    spend_entries,
)
from generation.serializers import (
    AudioJobRequest,
    CharacterJobRequest,
    DryRun,
    DryRunAnswer,
    EstimateSerializer,
    FrameJobRequest,
    ImageEditRequest,
    JobSerializer,
    KeyframeJobRequest,
    PortraitJobRequest,
    ProjectRef,
    RateSerializer,
    ReferenceJobRequest,
    RefreshRequest,
    SpendEntrySerializer,
    VideoJobRequest,
    VoiceSerializer,
)
from generation.voices import offered as voices_offered
from projects import selectors as project_selectors
from projects.models import Take
from projects.serializers import TakeSerializer
from projects.takes import current_take_ids


def accepted(job: GenerationJob) -> Response:
    return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


def quoted(project, type: str, target_type: str, target_id: int, params=None) -> Response:
    """A request's dry run: `200 {estimate}`, nothing started."""
    return Response({"estimate": job_quote(project, type, target_type, target_id, params)})


Type, Target = GenerationJob.Type, GenerationJob.TargetType
JOB_RESPONSES = {
    202: JobSerializer,
    200: DryRunAnswer,
    409: OpenApiResponse(description="Refused by the pipeline's state or the budget."),
    429: OpenApiResponse(description="A per-user limit or the request rate."),
}


class JobStartApi(APIView):
    """A POST that starts (or with `dry_run`, quotes) paid work: rate limited per user."""

    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "jobs"


def _validated(serializer_class, request) -> dict:
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class CharacterGenerationApi(JobStartApi):
    @extend_schema(
        request=CharacterJobRequest, responses=JOB_RESPONSES, summary="Generate characters"
    )
    def post(self, request):
        data = _validated(CharacterJobRequest, request)
        project = project_selectors.project_for_user(request.user, data["project_id"])
        if data["dry_run"]:
            params = {"count": data["count"], "instructions": data["instructions"]}
            return quoted(project, Type.CHARACTERS, Target.PROJECT, project.pk, params)
        job = services.start_character_generation(
            project=project, count=data["count"], instructions=data["instructions"]
        )
        return accepted(job)


class SceneGenerationApi(JobStartApi):
    @extend_schema(request=ProjectRef, responses=JOB_RESPONSES, summary="Generate scenes")
    def post(self, request):
        data = _validated(ProjectRef, request)
        project = project_selectors.project_for_user(request.user, data["project_id"])
        if data["dry_run"]:
            return quoted(project, Type.SCENES, Target.PROJECT, project.pk)
        return accepted(services.start_scene_generation(project=project))


class FrameGenerationApi(JobStartApi):
    @extend_schema(
        request=FrameJobRequest,
        responses=JOB_RESPONSES,
        summary="Generate frames of one scene, or of every scene (a parent job)",
    )
    def post(self, request):
        data = _validated(FrameJobRequest, request)
        if "scene_id" in data:
            scene = project_selectors.scene_for_user(request.user, data["scene_id"])
            if data["dry_run"]:
                return quoted(scene.project, Type.FRAMES, Target.SCENE, scene.pk)
            job = services.start_frame_generation(project=scene.project, scene=scene)
        else:
            project = project_selectors.project_for_user(request.user, data["project_id"])
            if data["dry_run"]:
                return quoted(project, Type.FRAMES, Target.PROJECT, project.pk)
            job = services.start_frame_generation(project=project)
        return accepted(job)


class VideoGenerationApi(JobStartApi):
    @extend_schema(
        request=VideoJobRequest,
        responses=JOB_RESPONSES,
        summary="Generate the clip of one frame, or of every frame (a parent job)",
    )
    def post(self, request):
        data = _validated(VideoJobRequest, request)
        if "frame_id" in data:
            frame = project_selectors.frame_for_user(request.user, data["frame_id"])
            if data["dry_run"]:
                return quoted(frame.scene.project, Type.VIDEOS, Target.FRAME, frame.pk)
            job = services.start_video_generation(
                project=frame.scene.project,
                frame=frame,
                instructions=data.get("instructions", ""),
            )
        else:
            project = project_selectors.project_for_user(request.user, data["project_id"])
            if data["dry_run"]:
                return quoted(project, Type.VIDEOS, Target.PROJECT, project.pk)
            job = services.start_video_generation(project=project)
        return accepted(job)


class StitchApi(JobStartApi):
    @extend_schema(request=ProjectRef, responses=JOB_RESPONSES, summary="Stitch the film")
    def post(self, request):
        data = _validated(ProjectRef, request)
        project = project_selectors.project_for_user(request.user, data["project_id"])
        if data["dry_run"]:
            return quoted(project, Type.STITCH, Target.PROJECT, project.pk)
        return accepted(services.start_stitching(project=project))


class ExportApi(JobStartApi):
    @extend_schema(
        request=ProjectRef,
        responses=JOB_RESPONSES,
        summary="Build the hand-off zip for an editor",
        description="A job builds a zip of the current clips, line and music stems, the final "
        "film, `subtitles.srt`/`.vtt` and `timeline.otio`/`.fcpxml`/`.edl` whose media paths are "
        "relative and resolve inside the zip. When it succeeds, `result.url` is the zip's "
        "signed URL. `409` without a finished cut (saying what is missing) or while an export "
        "of the project is running. No provider is called: `dry_run` quotes nothing to pay.",
    )
    def post(self, request):
        data = _validated(ProjectRef, request)
        project = project_selectors.project_for_user(request.user, data["project_id"])
        if data["dry_run"]:
            return quoted(project, Type.EXPORT, Target.PROJECT, project.pk)
        return accepted(services.start_export(project=project))


class StoryboardApproveApi(JobStartApi):
    @extend_schema(
        request=DryRun,
        responses=JOB_RESPONSES,
        summary="Approve the storyboard: start the clips (a project-wide video job)",
        description="Only while the project is `awaiting_storyboard_approval` with every "
        "keyframe ready; otherwise 409 says why. `dry_run: true` quotes the clips.",
    )
    def post(self, request, project_id: int):
        project = project_selectors.project_for_user(request.user, project_id)
        data = _validated(DryRun, request) if request.data else {"dry_run": False}
        if data["dry_run"]:
            return quoted(project, Type.VIDEOS, Target.PROJECT, project.pk)
        return accepted(services.storyboard_approve(project=project))


class JobDetailApi(APIView):
    @extend_schema(responses=JobSerializer, summary="A job")
    def get(self, request, job_id: int):
        return Response(JobSerializer(job_for_user(request.user, job_id)).data)

    @extend_schema(request=None, responses=JobSerializer, summary="Cancel a job and its children")
    def delete(self, request, job_id: int):
        job = services.job_cancel(job=job_for_user(request.user, job_id))
        return Response(JobSerializer(job).data)


class JobStatusApi(JobDetailApi):
    http_method_names = ["get", "head", "options"]


class JobRetryApi(JobStartApi):
    @extend_schema(
        request=DryRun,
        responses=JOB_RESPONSES,
        summary="Retry a job",
        description="Counts an attempt: a job that used its `JOB_MAX_ATTEMPTS` is refused (409).",
    )
    def post(self, request, job_id: int):
        job = job_for_user(request.user, job_id)
        data = _validated(DryRun, request) if request.data else {"dry_run": False}
        if data["dry_run"]:
            return quoted(job.project, job.type, job.target_type, job.target_id, job.params)
        return accepted(services.job_retry(job=job))


class JobListApi(GenericAPIView):
    serializer_class = JobSerializer

    @extend_schema(
        parameters=[
            OpenApiParameter("project_id", int),
            OpenApiParameter("status", str, enum=GenerationJob.Status.values),
            OpenApiParameter("type", str, enum=GenerationJob.Type.values),
            OpenApiParameter("parent_id", int),
        ],
        responses=JobSerializer(many=True),
        summary="Your jobs, newest first",
    )
    def get(self, request):
        params = request.query_params
        reject_unknown_params(request, allowed=["project_id", "status", "type", "parent_id"])
        jobs = jobs_for_user(request.user)
        errors = {}
        for key in ("project_id", "parent_id"):
            if key in params:
                value = parse_id(params[key])
                if value is None:
                    errors[key] = ["Must be an integer id."]
                else:
                    jobs = jobs.filter(**{key: value})
        for key, choices in (("status", GenerationJob.Status), ("type", GenerationJob.Type)):
            if key in params:
                if params[key] not in choices.values:
                    errors[key] = [f"Unknown {key} {params[key]!r}."]
                else:
                    jobs = jobs.filter(**{key: params[key]})
        if errors:
            raise serializers.ValidationError(errors)
        page = self.paginate_queryset(jobs.order_by("-created_at", "-id"))
        return self.get_paginated_response(JobSerializer(page, many=True).data)


class QueueCountsSerializer(serializers.Serializer):
    name = serializers.CharField()
    queued = serializers.IntegerField()
    started = serializers.IntegerField()
    scheduled = serializers.IntegerField()
    deferred = serializers.IntegerField()
    failed = serializers.IntegerField()
    finished = serializers.IntegerField()


class WorkerSerializer(serializers.Serializer):
    name = serializers.CharField()
    state = serializers.CharField()
    queues = serializers.ListField(child=serializers.CharField())
    current_job = serializers.CharField(allow_null=True)


class QueueStatusSerializer(serializers.Serializer):
    queues = QueueCountsSerializer(many=True)
    workers = WorkerSerializer(many=True, help_text="Staff only (host names, RQ job ids); else [].")
    workers_total = serializers.IntegerField()
    workers_busy = serializers.IntegerField()


class QueueStatusApi(APIView):
    @extend_schema(
        responses=QueueStatusSerializer,
        summary="RQ queues and workers",
        description="Counts for everyone; each worker's name, state and current job for staff.",
    )
    def get(self, request):
        return Response(queue_status(workers=request.user.is_staff))


# --- producer control: takes, one unit redone, staleness, refresh ---------------------------

Kind = Take.Kind


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
        return takes.order_by("-created_at", "-id")

    def get_serializer_context(self):
        return {**super().get_serializer_context(), "current_ids": self._current_ids}

    def paginate_queryset(self, queryset):
        page = super().paginate_queryset(queryset)
        self._current_ids = current_take_ids(page or [])
        return page


@extend_schema_view(get=extend_schema(summary="A character's portrait takes, newest first"))
class CharacterTakesApi(TakeListApi):
    kinds = (Kind.PORTRAIT,)

    def unit_takes(self):
        return project_selectors.character_for_user(
            self.request.user, self.kwargs["character_id"]
        ).takes


@extend_schema_view(get=extend_schema(summary="An object's reference image takes, newest first"))
class ObjectTakesApi(TakeListApi):
    kinds = (Kind.REFERENCE,)

    def unit_takes(self):
        return project_selectors.object_for_user(self.request.user, self.kwargs["object_id"]).takes


@extend_schema_view(
    get=extend_schema(
        parameters=[OpenApiParameter("kind", str, enum=[Kind.KEYFRAME, Kind.CLIP, Kind.LINE])],
        summary="A frame's keyframe, clip and line takes, newest first",
    )
)
class FrameTakesApi(TakeListApi):
    kinds = (Kind.KEYFRAME, Kind.CLIP, Kind.LINE)

    def unit_takes(self):
        return project_selectors.frame_for_user(self.request.user, self.kwargs["frame_id"]).takes


@extend_schema_view(
    get=extend_schema(
        parameters=[OpenApiParameter("kind", str, enum=[Kind.FILM])],
        summary="The project's final cuts, newest first",
    )
)
class ProjectTakesApi(TakeListApi):
    kinds = (Kind.FILM,)

    def unit_takes(self):
        return project_selectors.project_for_user(
            self.request.user, self.kwargs["project_id"]
        ).takes


class TakeSelectApi(APIView):
    @extend_schema(request=None, responses=TakeSerializer, summary="Make a take current")
    def post(self, request, take_id: int):
        take = services.take_select(take=project_selectors.take_for_user(request.user, take_id))
        return Response(TakeSerializer(take).data)


class PortraitGenerationApi(JobStartApi):
    @extend_schema(request=PortraitJobRequest, responses=JOB_RESPONSES, summary="Redo one portrait")
    def post(self, request):
        data = _validated(PortraitJobRequest, request)
        character = project_selectors.character_for_user(request.user, data["character_id"])
        if data["dry_run"]:
            return quoted(character.project, Type.PORTRAIT, Target.CHARACTER, character.pk)
        job = services.start_portrait_generation(
            character=character, instructions=data["instructions"]
        )
        return accepted(job)


class KeyframeGenerationApi(JobStartApi):
    @extend_schema(request=KeyframeJobRequest, responses=JOB_RESPONSES, summary="Redo one keyframe")
    def post(self, request):
        data = _validated(KeyframeJobRequest, request)
        frame = project_selectors.frame_for_user(request.user, data["frame_id"])
        if data["dry_run"]:
            return quoted(frame.scene.project, Type.KEYFRAME, Target.FRAME, frame.pk)
        job = services.start_keyframe_generation(frame=frame, instructions=data["instructions"])
        return accepted(job)


class ReferenceGenerationApi(JobStartApi):
    @extend_schema(
        request=ReferenceJobRequest,
        responses=JOB_RESPONSES,
        summary="Redraw an object's reference image",
        description="A `reference-generation` job draws the object's reference image again "
        "(a new seed, with the optional `instructions`): a new current `reference` take; the "
        "keyframes of the scenes that list the object become stale. `409` while a job draws "
        "or edits it, or past the budget.",
    )
    def post(self, request):
        data = _validated(ReferenceJobRequest, request)
        obj = project_selectors.object_for_user(request.user, data["object_id"])
        if data["dry_run"]:
            params = {"instructions": data["instructions"]}
            return quoted(obj.project, Type.REFERENCE, Target.OBJECT, obj.pk, params)
        job = services.start_reference_generation(
            obj=obj, instructions=data["instructions"], redraw=True
        )
        return accepted(job)


class ImageEditApi(JobStartApi):
    @extend_schema(
        request=ImageEditRequest,
        responses=JOB_RESPONSES,
        summary="Edit a portrait, a keyframe or an object's reference image by an instruction",
        description="The image model gets the current image and the instruction; the result "
        "is a new take of the portrait (`character_id`), keyframe (`frame_id`) or object's "
        "reference image (`object_id`, an addition to the v2 contract), current, and what was "
        "made from the old one becomes stale (an object's: the keyframes of the scenes that "
        "list it). `400` for an empty instruction or one over 2000 characters; `409` when the "
        "unit has no image yet or a job works on it.",
    )
    def post(self, request):
        data = _validated(ImageEditRequest, request)
        params = {"instruction": data["instruction"]}
        if "character_id" in data:
            character = project_selectors.character_for_user(request.user, data["character_id"])
            if data["dry_run"]:
                project, target = character.project, (Target.CHARACTER, character.pk)
                return quoted(project, Type.IMAGE_EDIT, *target, params)
            job = services.start_image_edit(character=character, instruction=data["instruction"])
        elif "object_id" in data:
            obj = project_selectors.object_for_user(request.user, data["object_id"])
            if data["dry_run"]:
                return quoted(obj.project, Type.IMAGE_EDIT, Target.OBJECT, obj.pk, params)
            job = services.start_image_edit(obj=obj, instruction=data["instruction"])
        else:
            frame = project_selectors.frame_for_user(request.user, data["frame_id"])
            if data["dry_run"]:
                project, target = frame.scene.project, (Target.FRAME, frame.pk)
                return quoted(project, Type.IMAGE_EDIT, *target, params)
            job = services.start_image_edit(frame=frame, instruction=data["instruction"])
        return accepted(job)


StaleUnit = inline_serializer(
    "StaleUnit",
    {
        "type": serializers.ChoiceField(
            choices=["portrait", "reference", "keyframe", "clip", "line", "film"]
        ),
        "id": serializers.IntegerField(),
        "reasons": serializers.ListField(child=serializers.CharField()),
        "follows": serializers.BooleanField(
            required=False, help_text="Not stale yet: redone because what it is made from is."
        ),
    },
)
StaleReport = inline_serializer(
    "StaleReport",
    {"units": serializers.ListField(child=StaleUnit), "estimate": serializers.DictField()},
)


class ProjectStaleApi(APIView):
    @extend_schema(responses=StaleReport, summary="Units whose inputs changed since their take")
    def get(self, request, project_id: int):
        return Response(
            project_stale_report(project_selectors.project_for_user(request.user, project_id))
        )


class ProjectRefreshApi(JobStartApi):
    @extend_schema(
        request=RefreshRequest,
        responses={202: JobSerializer, 200: StaleReport},
        summary="Regenerate exactly the stale units, then re-cut (dry_run: only say what)",
    )
    def post(self, request, project_id: int):
        project = project_selectors.project_for_user(request.user, project_id)  # 404 before 400
        data = _validated(RefreshRequest, request)
        if data["dry_run"]:
            return Response(project_stale_report(project, plan=True))
        return accepted(services.refresh_start(project=project))


# --- money: rates, estimates, the ledger ---------------------------------------------------


class RatesApi(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter(
                "at",
                OpenApiTypes.DATE,
                description="An addition: the card in effect on this day (UTC; default today), "
                "to see an announced price change.",
            )
        ],
        responses=RateSerializer(many=True),
        summary="The rate card: what each provider's model costs per unit",
        description="Dated list prices with their source, the ones in effect today (a price "
        "announced for a later day is used from that day: see `at`); `local` (offline) costs "
        "0. Replaced or extended by the file named in `RATE_CARD_FILE`.",
    )
    def get(self, request):
        reject_unknown_params(request, allowed=["at"])
        day = None
        if "at" in request.query_params:
            try:
                day = parse_day(request.query_params["at"])
            except ValueError:
                raise serializers.ValidationError({"at": ["A day as YYYY-MM-DD."]}) from None
        return Response([rate.as_dict() for rate in rate_card(day)])


class ProjectEstimateApi(APIView):
    @extend_schema(
        responses=EstimateSerializer,
        summary="What the pipeline would still spend from the project's current state",
    )
    def get(self, request, project_id: int):
        project = project_selectors.project_for_user(request.user, project_id)
        return Response(project_estimate(project))


SpendReport = inline_serializer(
    "SpendReport",
    {
        "spent_usd": serializers.FloatField(),
        "budget_usd": serializers.FloatField(allow_null=True),
        "reserved_usd": serializers.FloatField(help_text="Set aside by running jobs."),
        "by_stage": serializers.DictField(child=serializers.FloatField()),
        "by_provider": serializers.DictField(
            child=serializers.FloatField(), help_text="Keyed `provider/model`."
        ),
        "entries": inline_serializer(
            "SpendEntryPage",
            {
                "count": serializers.IntegerField(),
                "next": serializers.URLField(allow_null=True),
                "previous": serializers.URLField(allow_null=True),
                "results": SpendEntrySerializer(many=True),
            },
        ),
    },
)


class ProjectSpendApi(GenericAPIView):
    serializer_class = SpendEntrySerializer

    @extend_schema(
        responses=SpendReport,
        summary="The ledger: every paid provider call of the project, newest first",
    )
    def get(self, request, project_id: int):
        project = project_selectors.project_for_user(request.user, project_id)
        reject_unknown_params(request, allowed=[])
        page = self.paginate_queryset(spend_entries(project))
        entries = self.get_paginated_response(SpendEntrySerializer(page, many=True).data).data
        return Response({**project_spend(project), "entries": entries})


# --- sound -----------------------------------------------------------------------------------


class AudioGenerationApi(JobStartApi):
    @extend_schema(
        request=AudioJobRequest,
        responses=JOB_RESPONSES,
        summary="Speak the dialogue: one frame's line again, or every missing or stale line",
        description="`{frame_id}` speaks that frame's dialogue again (a new `line` take, "
        "current); `{project_id}` speaks every line that has no take yet or whose text, "
        "speaker, voice or speech provider/model changed since. Each line is said by its "
        "speaker's `voice` (the narrator's when the frame has no speaker). `409` without "
        "dialogue to speak or while lines of the project are being spoken.",
    )
    def post(self, request):
        data = _validated(AudioJobRequest, request)
        if "frame_id" in data:
            frame = project_selectors.frame_for_user(request.user, data["frame_id"])
            if data["dry_run"]:
                return quoted(frame.scene.project, Type.AUDIO, Target.FRAME, frame.pk)
            job = services.start_audio_generation(project=frame.scene.project, frame=frame)
        else:
            project = project_selectors.project_for_user(request.user, data["project_id"])
            if data["dry_run"]:
                return quoted(project, Type.AUDIO, Target.PROJECT, project.pk)
            job = services.start_audio_generation(project=project)
        return accepted(job)


class VoicesApi(APIView):
    @extend_schema(
        responses=VoiceSerializer(many=True),
        summary="The voices of the configured speech provider",
        description="Gemini's prebuilt voices, or offline the eSpeak NG stand-ins (robotic, "
        "each its own variant, pitch and pace). A character's `voice` is one of these ids.",
    )
    def get(self, request):
        reject_unknown_params(request, allowed=[])
        return Response(VoiceSerializer(voices_offered(), many=True).data)


class VoiceSampleApi(APIView):
    @extend_schema(
        responses={(200, "audio/wav"): OpenApiTypes.BINARY},
        summary="Hear a voice: a short WAV of it saying one sentence",
    )
    def get(self, request, voice_id: str):
        reject_unknown_params(request, allowed=[])
        if voice_id not in {v.id for v in voices_offered()}:
            raise Http404("No such voice.")
        sample = sound.voice_sample(voice_id, user_id=request.user.pk)
        response = HttpResponse(sample, content_type="audio/wav")
        response["Cache-Control"] = "private, max-age=86400"
        return response
