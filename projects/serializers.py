"""The creative hierarchy's JSON: what the API answers and what it accepts (the director's
tools validate their arguments with the same serializers)."""

from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from filmstudio.serializers import (
    StrictBooleanField,
    StrictCharField,
    StrictIntegerField,
    StrictModelSerializer,
    StrictSerializer,
)
from media.signing import blob_url
from projects import services
from projects.models import (
    CHECKPOINTS,
    Character,
    Frame,
    Project,
    ProjectObject,
    Scene,
    Take,
    Video,
)
from projects.takes import NO_TAKES, UnitTakes, take_is_current, unit_takes


class TakeStateFields(serializers.Serializer):
    """`take_id`, `takes_count`, `stale`, `stale_reasons` of a unit: from the serializer's
    context (`take_states`, the whole project at once) or, alone, looked up for this unit."""

    take_kind = ""
    take_id = serializers.SerializerMethodField()
    takes_count = serializers.SerializerMethodField()
    stale = serializers.SerializerMethodField()
    stale_reasons = serializers.SerializerMethodField()
    TAKE_FIELDS = ["take_id", "takes_count", "stale", "stale_reasons"]

    def _takes(self, obj) -> UnitTakes:
        key = (self.take_kind, obj.frame_id if isinstance(obj, Video) else obj.pk)
        states = self.context.get("take_states")
        return states.get(key, NO_TAKES) if states is not None else unit_takes(self.take_kind, obj)

    def get_take_id(self, obj) -> int | None:
        return self._takes(obj).take_id

    def get_takes_count(self, obj) -> int:
        return self._takes(obj).takes_count

    def get_stale(self, obj) -> bool:
        return self._takes(obj).stale

    def get_stale_reasons(self, obj) -> list[str]:
        return self._takes(obj).reasons


class CharacterSerializer(TakeStateFields, StrictModelSerializer):
    take_kind = Take.Kind.PORTRAIT
    project_id = serializers.IntegerField(read_only=True)
    image_url = serializers.SerializerMethodField()

    class Meta:
        model = Character
        fields = [
            "id",
            "project_id",
            *services.CHARACTER_FIELDS,
            "voice",
            "status",
            "rejection_reason",
            "image_url",
            *TakeStateFields.TAKE_FIELDS,
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["status", "rejection_reason"]

    def get_image_url(self, obj: Character) -> str | None:
        return blob_url(obj.image)


class ProjectObjectSerializer(TakeStateFields, StrictModelSerializer):
    """A prop or a place; its `image_url` is its current reference image (drawn by a
    `reference-generation` job started when it is created), `stale` when its name, description
    or the project's style changed since that take."""

    take_kind = Take.Kind.REFERENCE
    project_id = serializers.IntegerField(read_only=True)
    image_url = serializers.SerializerMethodField()
    name = StrictCharField(max_length=120)
    description = StrictCharField(max_length=5000, required=False, allow_blank=True)

    class Meta:
        model = ProjectObject
        fields = [
            "id",
            "project_id",
            "name",
            "description",
            "image_url",
            *TakeStateFields.TAKE_FIELDS,
            "created_at",
            "updated_at",
        ]

    def get_image_url(self, obj: ProjectObject) -> str | None:
        return blob_url(obj.image)


class VideoSerializer(TakeStateFields, serializers.ModelSerializer):
    take_kind = Take.Kind.CLIP
    video_url = serializers.SerializerMethodField()

    class Meta:
        model = Video
        fields = ["id", "status", "video_url", "duration", *TakeStateFields.TAKE_FIELDS]

    def get_video_url(self, obj: Video) -> str | None:
        return blob_url(obj.file)


class LineSerializer(serializers.Serializer):
    """A frame's dialogue as spoken: its current `line` take."""

    take_id = serializers.IntegerField()
    url = serializers.CharField()
    duration = serializers.FloatField(allow_null=True)
    takes_count = serializers.IntegerField()
    stale = serializers.BooleanField()
    stale_reasons = serializers.ListField(child=serializers.CharField())


class FrameSerializer(TakeStateFields, serializers.ModelSerializer):
    take_kind = Take.Kind.KEYFRAME
    image_url = serializers.SerializerMethodField()
    speaker_id = serializers.IntegerField(read_only=True, allow_null=True)
    character_ids = serializers.SerializerMethodField(
        help_text="Who is in the shot (its keyframe gets exactly their portraits); empty: the "
        "shot list named nobody and the scene's whole cast is used."
    )
    consistency = serializers.SerializerMethodField(
        help_text="How faithfully the current keyframe shows the characters in the shot: "
        "`{score, per_character: [{character_id, name, score, issues}], checked_by, threshold, "
        "flagged, tries}` (null: no character in the shot, or not scored)."
    )
    line = serializers.SerializerMethodField()
    video = VideoSerializer(read_only=True, allow_null=True)

    class Meta:
        model = Frame
        fields = [
            "id",
            "order",
            "prompt",
            "camera",
            "dialogue",
            "speaker_id",
            "character_ids",
            "consistency",
            "duration",
            "status",
            "image_url",
            *TakeStateFields.TAKE_FIELDS,
            "line",
            "video",
        ]

    def get_image_url(self, obj: Frame) -> str | None:
        return blob_url(obj.image)

    def get_character_ids(self, obj: Frame) -> list[int]:
        return sorted(c.id for c in obj.characters.all())

    @extend_schema_field(serializers.DictField(allow_null=True))
    def get_consistency(self, obj: Frame) -> dict | None:
        take = obj.keyframe_take
        return take.consistency if take is not None else None

    @extend_schema_field(LineSerializer(allow_null=True))
    def get_line(self, obj: Frame) -> dict | None:
        take = obj.line_take
        if take is None:
            return None
        states = self.context.get("take_states")
        key = (Take.Kind.LINE, obj.pk)
        state = states.get(key, NO_TAKES) if states is not None else unit_takes(key[0], obj)
        return {
            "take_id": take.pk,
            "url": blob_url(take.file),
            "duration": take.duration,
            "takes_count": state.takes_count,
            "stale": state.stale,
            "stale_reasons": state.reasons,
        }


class SceneSerializer(serializers.ModelSerializer):
    character_ids = serializers.SerializerMethodField()
    object_ids = serializers.SerializerMethodField()
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
            "object_ids",
            "cast_fallback",
            "frames",
        ]

    def get_character_ids(self, obj: Scene) -> list[int]:
        return [c.id for c in obj.characters.all()]

    def get_object_ids(self, obj: Scene) -> list[int]:
        return sorted(o.id for o in obj.project_objects.all())

    cast_fallback = serializers.BooleanField(
        read_only=True,
        help_text="The model named none of the cast though the scene speaks of them: the whole "
        "approved cast was put in (edit `character_ids` to correct it).",
    )


class StrictFloatField(serializers.FloatField):
    """A JSON number (not a string or a boolean)."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int | float):
            self.fail("invalid")
        return super().to_internal_value(data)


class BudgetField(serializers.DecimalField):
    """USD as a JSON number (or a decimal string), 0 to MAX_BUDGET_USD, or null for none."""

    def __init__(self, **kwargs):
        super().__init__(
            max_digits=12,
            decimal_places=2,
            min_value=Decimal(0),
            max_value=Decimal(str(settings.MAX_BUDGET_USD)),
            allow_null=True,
            required=False,
            coerce_to_string=False,
            help_text="The most this project may spend, in USD (null: no budget). A request "
            "whose estimate does not fit what is left is refused (409); a running pipeline "
            "pauses (`paused_budget`) rather than exceed it, and raising it resumes.",
            **kwargs,
        )

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int | float | str):
            self.fail("invalid")
        return super().to_internal_value(data)


class ProjectSerializer(StrictModelSerializer):
    final_video_url = serializers.SerializerMethodField()
    title = StrictCharField(min_length=1, max_length=200)
    checkpoints = serializers.ListField(
        child=serializers.ChoiceField(choices=CHECKPOINTS),
        required=False,
        help_text="Where the pipeline stops for you, each at most once: `cast` (always on; it is "
        "added when left out) and `storyboard` (once every keyframe is ready the project waits in "
        '`awaiting_storyboard_approval`, before any clip is paid for). Default `["cast"]`.',
    )

    budget_usd = BudgetField()
    min_consistency = StrictFloatField(
        min_value=0.0,
        max_value=1.0,
        allow_null=True,
        required=False,
        help_text="Keyframes the consistency judge scores below this (0..1) are drawn again "
        "with its issues (null: the MIN_CONSISTENCY setting with the Gemini judge, off "
        "offline).",
    )
    burn_subtitles = StrictBooleanField(
        required=False,
        help_text="true: the subtitles are burnt into the picture of the next cut.",
    )
    spent_usd = serializers.DecimalField(
        max_digits=14, decimal_places=6, coerce_to_string=False, read_only=True,
        help_text="What the ledger holds for this project (`GET /api/projects/{id}/spend`).",
    )  # fmt: skip

    class Meta:
        model = Project
        fields = [
            "id",
            *services.PROJECT_FIELDS,
            "spent_usd",
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

    def validate_checkpoints(self, value: list[str]) -> list[str]:
        try:
            return services.checkpoints_clean(value)
        except DjangoValidationError as error:
            raise serializers.ValidationError(error.message_dict["checkpoints"]) from None


class ProjectDetailSerializer(TakeStateFields, ProjectSerializer):
    """The project with its whole hierarchy; give it `take_states` in its context
    (`project_document`), or every unit looks its takes up alone."""

    take_kind = Take.Kind.FILM
    characters = CharacterSerializer(many=True, read_only=True)
    scenes = SceneSerializer(many=True, read_only=True)
    objects = ProjectObjectSerializer(many=True, read_only=True, source="project_objects")

    class Meta(ProjectSerializer.Meta):
        fields = [
            *ProjectSerializer.Meta.fields,
            *TakeStateFields.TAKE_FIELDS,
            "characters",
            "objects",
            "scenes",
        ]


# Ids within a bigint: a larger number is a 400 here, not a database error.
MAX_ID = 2**63 - 1


class SceneUpdateSerializer(StrictModelSerializer):
    character_ids = serializers.ListField(
        child=StrictIntegerField(min_value=1, max_value=MAX_ID), required=False, max_length=100
    )

    object_ids = serializers.ListField(
        child=StrictIntegerField(min_value=1, max_value=MAX_ID), required=False, max_length=100
    )

    class Meta:
        model = Scene
        fields = [*services.SCENE_FIELDS, "character_ids", "object_ids"]


class FrameUpdateSerializer(StrictModelSerializer):
    speaker_id = StrictIntegerField(min_value=1, max_value=MAX_ID, allow_null=True, required=False)

    class Meta:
        model = Frame
        fields = [*services.FRAME_FIELDS, "speaker_id"]


class RejectSerializer(StrictSerializer):
    reason = StrictCharField(required=False, allow_blank=True, max_length=2000)


class TakeSerializer(serializers.ModelSerializer):
    """One take: what was made, from what, and whether its unit shows it now."""

    kind = serializers.ChoiceField(choices=Take.Kind.choices)
    url = serializers.SerializerMethodField()
    current = serializers.SerializerMethodField()
    cost_usd = serializers.FloatField()

    class Meta:
        model = Take
        fields = [
            "id",
            "kind",
            "url",
            "prompt",
            "instructions",
            "provider",
            "model",
            "seed",
            "cost_usd",
            "inputs_hash",
            "current",
            "duration",
            "created_at",
        ]

    def get_url(self, take: Take) -> str:
        return blob_url(take.file)

    def get_current(self, take: Take) -> bool:
        current = self.context.get("current_ids")  # a list passes them, found in one go
        return take.pk in current if current is not None else take_is_current(take)
