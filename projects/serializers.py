"""The creative hierarchy's JSON: what the API answers and what it accepts (the director's
tools validate their arguments with the same serializers)."""

from rest_framework import serializers

from filmstudio.serializers import StrictCharField, StrictModelSerializer, StrictSerializer
from media.signing import blob_url
from projects import services
from projects.models import Character, Frame, Project, Scene, Video


class CharacterSerializer(StrictModelSerializer):
    project_id = serializers.IntegerField(read_only=True)
    image_url = serializers.SerializerMethodField()

    class Meta:
        model = Character
        fields = [
            "id",
            "project_id",
            *services.CHARACTER_FIELDS,
            "status",
            "rejection_reason",
            "image_url",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["status", "rejection_reason"]

    def get_image_url(self, obj: Character) -> str | None:
        return blob_url(obj.image)


class VideoSerializer(serializers.ModelSerializer):
    video_url = serializers.SerializerMethodField()

    class Meta:
        model = Video
        fields = ["id", "status", "video_url", "duration"]

    def get_video_url(self, obj: Video) -> str | None:
        return blob_url(obj.file)


class FrameSerializer(serializers.ModelSerializer):
    image_url = serializers.SerializerMethodField()
    video = VideoSerializer(read_only=True, allow_null=True)

    class Meta:
        model = Frame
        fields = [
            "id",
            "order",
            "prompt",
            "camera",
            "dialogue",
            "duration",
            "status",
            "image_url",
            "video",
        ]

    def get_image_url(self, obj: Frame) -> str | None:
        return blob_url(obj.image)


class SceneSerializer(serializers.ModelSerializer):
    character_ids = serializers.SerializerMethodField()
    frames = FrameSerializer(many=True, read_only=True)

    class Meta:
        model = Scene
        fields = [
            "id",
            "order",
            "title",
            "concise_plot",
            "detailed_plot",
            "dialogue",
            "location",
            "mood",
            "status",
            "character_ids",
            "frames",
        ]

    def get_character_ids(self, obj: Scene) -> list[int]:
        return [c.id for c in obj.characters.all()]


class ProjectSerializer(StrictModelSerializer):
    final_video_url = serializers.SerializerMethodField()
    title = StrictCharField(min_length=1, max_length=200)

    class Meta:
        model = Project
        fields = [
            "id",
            *services.PROJECT_FIELDS,
            "status",
            "progress",
            "final_video_url",
            "final_duration",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["status", "progress", "final_duration"]

    def get_final_video_url(self, obj: Project) -> str | None:
        return blob_url(obj.final_video)


class ProjectDetailSerializer(ProjectSerializer):
    characters = CharacterSerializer(many=True, read_only=True)
    scenes = SceneSerializer(many=True, read_only=True)

    class Meta(ProjectSerializer.Meta):
        fields = [*ProjectSerializer.Meta.fields, "characters", "scenes"]


class RejectSerializer(StrictSerializer):
    reason = StrictCharField(required=False, allow_blank=True, max_length=2000)
