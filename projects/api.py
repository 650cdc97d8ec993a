from django.conf import settings
from django.http import HttpResponse
from django.utils.text import slugify
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import generics, serializers, status
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from filmstudio.api import reject_unknown_params
from generation import services as pipeline
from generation import sound
from generation.export import FORMATS, project_cut, timeline_text
from media.signing import blob_url
from projects import selectors, services
from projects.documents import project_document
from projects.models import Project
from projects.serializers import (
    CharacterSerializer,
    FrameSerializer,
    FrameUpdateSerializer,
    ProjectDetailSerializer,
    ProjectObjectSerializer,
    ProjectSerializer,
    RejectSerializer,
    SceneSerializer,
    SceneUpdateSerializer,
)
from projects.takes import take_states


def project_detail_response(user, project_id: int, code: int = status.HTTP_200_OK) -> Response:
    """The project document: what ProjectDetailSerializer describes, built in one pass."""
    return Response(project_document(user, project_id), status=code)


class ProjectListCreateApi(generics.GenericAPIView):
    serializer_class = ProjectSerializer

    def get_queryset(self):
        return selectors.projects_for_user(self.request.user)

    @extend_schema(responses=ProjectSerializer(many=True), summary="List your projects")
    def get(self, request):
        reject_unknown_params(request, allowed=["status"])
        projects = self.get_queryset()
        if "status" in request.query_params:
            value = request.query_params["status"]
            if value not in Project.Status.values:
                raise serializers.ValidationError({"status": [f"Unknown status {value!r}."]})
            projects = projects.filter(status=value)
        page = self.paginate_queryset(projects)
        return self.get_paginated_response(ProjectSerializer(page, many=True).data)

    @extend_schema(
        request=ProjectSerializer,
        responses={201: ProjectDetailSerializer},
        summary="Create a project",
    )
    def post(self, request):
        serializer = ProjectSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        project = services.project_create(owner=request.user, **serializer.validated_data)
        return project_detail_response(request.user, project.pk, status.HTTP_201_CREATED)


class ProjectDetailApi(APIView):
    serializer_class = ProjectDetailSerializer

    @extend_schema(responses=ProjectDetailSerializer, summary="A project with its whole hierarchy")
    def get(self, request, project_id: int):
        return project_detail_response(request.user, project_id)

    @extend_schema(
        request=ProjectSerializer(partial=True),
        responses=ProjectDetailSerializer,
        summary="Update a project",
    )
    def patch(self, request, project_id: int):
        project = selectors.project_for_user(request.user, project_id)
        serializer = ProjectSerializer(project, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        pipeline.project_update(project=project, **serializer.validated_data)
        return project_detail_response(request.user, project_id)

    @extend_schema(responses={204: None}, summary="Delete a project, its jobs and its files")
    def delete(self, request, project_id: int):
        project = selectors.project_for_user(request.user, project_id)
        pipeline.project_delete(project=project)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ProjectCharactersApi(APIView):
    @extend_schema(responses=CharacterSerializer(many=True), summary="A project's characters")
    def get(self, request, project_id: int):
        project = selectors.project_for_user(request.user, project_id)
        characters = list(project.characters.select_related("project").order_by("id"))
        context = {"take_states": take_states(project, characters, [])}
        return Response(CharacterSerializer(characters, many=True, context=context).data)


class ProjectObjectsApi(APIView):
    @extend_schema(
        responses=ProjectObjectSerializer(many=True), summary="A project's objects (props, places)"
    )
    def get(self, request, project_id: int):
        project = selectors.project_for_user(request.user, project_id)
        reject_unknown_params(request, allowed=[])
        objects = list(project.project_objects.select_related("project").order_by("id"))
        context = {"take_states": take_states(project, [], [], objects)}
        return Response(ProjectObjectSerializer(objects, many=True, context=context).data)

    @extend_schema(
        request=ProjectObjectSerializer,
        responses={201: ProjectObjectSerializer, 409: OpenApiResponse(description="Budget.")},
        summary="Add an object; its reference image is drawn by a job started now",
        description="A `reference-generation` job draws its reference image (a `reference` "
        "take); the keyframes of the scenes that list it (`object_ids`) get it as a reference "
        "after the characters' portraits. `409` when the budget does not allow the drawing.",
    )
    def post(self, request, project_id: int):
        project = selectors.project_for_user(request.user, project_id)
        serializer = ProjectObjectSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        obj = pipeline.object_create(project=project, **serializer.validated_data)
        return Response(ProjectObjectSerializer(obj).data, status=status.HTTP_201_CREATED)


class ObjectDetailApi(APIView):
    @extend_schema(responses=ProjectObjectSerializer, summary="An object")
    def get(self, request, object_id: int):
        return Response(
            ProjectObjectSerializer(selectors.object_for_user(request.user, object_id)).data
        )

    @extend_schema(
        request=ProjectObjectSerializer(partial=True),
        responses=ProjectObjectSerializer,
        summary="Edit an object's name or description",
    )
    def patch(self, request, object_id: int):
        obj = selectors.object_for_user(request.user, object_id)
        serializer = ProjectObjectSerializer(obj, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        obj = pipeline.object_update(obj=obj, **serializer.validated_data)
        return Response(ProjectObjectSerializer(obj).data)

    @extend_schema(request=None, responses={204: None}, summary="Delete an object")
    def delete(self, request, object_id: int):
        pipeline.object_delete(obj=selectors.object_for_user(request.user, object_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class CharacterDetailApi(APIView):
    @extend_schema(responses=CharacterSerializer, summary="A character")
    def get(self, request, character_id: int):
        character = selectors.character_for_user(request.user, character_id)
        return Response(CharacterSerializer(character).data)

    @extend_schema(
        request=CharacterSerializer(partial=True),
        responses=CharacterSerializer,
        summary="Edit a character",
    )
    def patch(self, request, character_id: int):
        character = selectors.character_for_user(request.user, character_id)
        serializer = CharacterSerializer(character, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        character = pipeline.character_update(character=character, **serializer.validated_data)
        return Response(CharacterSerializer(character).data)


class CharacterApproveApi(APIView):
    @extend_schema(request=None, responses=CharacterSerializer, summary="Approve a character")
    def post(self, request, character_id: int):
        character = selectors.character_for_user(request.user, character_id)
        character = pipeline.character_approve(character=character)
        return Response(CharacterSerializer(character).data)


class CharacterRejectApi(APIView):
    @extend_schema(request=RejectSerializer, responses=CharacterSerializer, summary="Reject one")
    def post(self, request, character_id: int):
        character = selectors.character_for_user(request.user, character_id)
        serializer = RejectSerializer(data=request.data if request.data else {})
        serializer.is_valid(raise_exception=True)
        character = pipeline.character_reject(
            character=character, reason=serializer.validated_data.get("reason", "")
        )
        return Response(CharacterSerializer(character).data)


class SceneDetailApi(APIView):
    @extend_schema(
        request=SceneUpdateSerializer(partial=True),
        responses=SceneSerializer,
        summary="Edit a scene's text, cast and objects",
        description="`character_ids` must be approved characters of the scene's project, "
        "`object_ids` objects of the same project (their images go with its keyframes). "
        "`409` while the scene's frames or the project's scenes are being generated.",
    )
    def patch(self, request, scene_id: int):
        scene = selectors.scene_for_user(request.user, scene_id)
        serializer = SceneUpdateSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        scene = pipeline.scene_update(scene=scene, **serializer.validated_data)
        scene, states = selectors.scene_with_frames(scene.pk)
        return Response(SceneSerializer(scene, context={"take_states": states}).data)


class FrameDetailApi(APIView):
    @extend_schema(
        request=FrameUpdateSerializer(partial=True),
        responses=FrameSerializer,
        summary="Edit a frame's text and speaker",
        description="`speaker_id` is an approved character of the frame's scene, or null for "
        "the narrator. `409` while its scene's frames, its keyframe or its clip are generated.",
    )
    def patch(self, request, frame_id: int):
        frame = selectors.frame_for_user(request.user, frame_id)
        serializer = FrameUpdateSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        frame = pipeline.frame_update(frame=frame, **serializer.validated_data)
        return Response(FrameSerializer(frame).data)


# --- hand-off to an editor -------------------------------------------------------------------


class TimelineFormatQuery(DefaultContentNegotiation):
    """`?format=` names the timeline format here; DRF would take it for a renderer (and 404)."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


Error = inline_serializer("Error", {"detail": serializers.CharField()})


class ProjectExportApi(APIView):
    content_negotiation_class = TimelineFormatQuery

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "format",
                str,
                enum=list(FORMATS),
                required=True,
                description="`otio` (OpenTimelineIO JSON), `fcpxml` (Final Cut Pro X XML) or "
                "`edl` (CMX 3600).",
            )
        ],
        responses={
            (200, "application/json"): OpenApiTypes.OBJECT,
            (200, "application/xml"): OpenApiTypes.STR,
            (200, "text/plain"): OpenApiTypes.STR,
            409: OpenApiResponse(
                Error, description="No finished cut: `detail` says what is missing."
            ),
        },
        summary="The film's timeline for an editor",
        description="The current takes as a timeline: one video track with a clip per frame in "
        "film order at the film's frame rate (exact, in frames), dialogue and music tracks, a "
        "marker per scene (its title) and the frame id, take id and prompt in each clip's "
        "metadata. Media are signed absolute URLs that expire like every `*_url`; "
        "`POST /api/jobs/export` makes a zip with the media and relative paths instead.",
    )
    def get(self, request, project_id: int):
        project = selectors.project_for_user(request.user, project_id)
        reject_unknown_params(request, allowed=["format"])
        fmt = request.query_params.get("format")
        if fmt not in FORMATS:
            got = "none given" if fmt is None else f"got {fmt!r}"
            raise serializers.ValidationError({"format": [f"One of {', '.join(FORMATS)}; {got}."]})
        cut = project_cut(project)
        text = timeline_text(
            cut, fmt, lambda media: request.build_absolute_uri(blob_url(media.name))
        )
        spec = FORMATS[fmt]
        response = HttpResponse(text, content_type=f"{spec.content_type}; charset=utf-8")
        filename = f"{slugify(project.title) or f'project-{project.pk}'}{spec.suffix}"
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response


# --- sound -----------------------------------------------------------------------------------


def _subtitles_schema(fmt: str, content_type: str):
    return extend_schema(
        responses={(200, content_type): OpenApiTypes.STR},
        summary=f"The film's subtitles (.{fmt}): each line with its speaker, timed to the audio",
        description="One cue per spoken line, from where the stitch placed it in the mix to "
        "where it ends. Before a film is cut, where the current clips and lines would put them.",
    )


class SubtitlesApi(APIView):
    fmt, content_type = "srt", "application/x-subrip"

    @_subtitles_schema("srt", "application/x-subrip")
    def get(self, request, project_id: int):
        project = selectors.project_for_user(request.user, project_id)
        reject_unknown_params(request, allowed=[])
        text = sound.subtitles(project, self.fmt)
        response = HttpResponse(text, content_type=f"{self.content_type}; charset=utf-8")
        filename = f"{slugify(project.title) or f'project-{project.pk}'}.{self.fmt}"
        response["Content-Disposition"] = f'inline; filename="{filename}"'
        return response


class SubtitlesVttApi(SubtitlesApi):
    fmt, content_type = "vtt", "text/vtt"

    @_subtitles_schema("vtt", "text/vtt")
    def get(self, request, project_id: int):
        return super().get(request, project_id)


class MusicUploadApi(APIView):
    parser_classes = [MultiPartParser]

    @extend_schema(
        request={
            "multipart/form-data": inline_serializer(
                "MusicUpload", {"file": serializers.FileField(help_text="An audio file.")}
            )
        },
        responses={
            200: ProjectSerializer,
            400: OpenApiResponse(Error, description="Not audio, or longer than allowed."),
            413: OpenApiResponse(Error, description="Larger than 20 MB."),
        },
        summary="Upload the project's music (it becomes `music: upload`)",
        description="An audio file (probed by ffmpeg, not judged by its name) of at most "
        "20 MB and 10 minutes. Under the film it is looped or cut to length, faded in and out "
        "and ducked under the dialogue. A refused upload stores nothing.",
    )
    def post(self, request, project_id: int):
        project = selectors.project_for_user(request.user, project_id)
        upload = request.FILES.get("file")
        if upload is None:
            raise serializers.ValidationError({"file": ["Send the track as multipart `file`."]})
        if upload.size > settings.MUSIC_MAX_BYTES:
            return Response(
                {"detail": f"The track is larger than {settings.MUSIC_MAX_BYTES} bytes."},
                status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
            )
        project = sound.music_upload(project=project, upload=upload)
        return Response(ProjectSerializer(project).data)
