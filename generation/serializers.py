"""Jobs' JSON and the job requests' bodies, shared by the API and the director's tools."""

from rest_framework import serializers

from filmstudio.serializers import (
    StrictBooleanField,
    StrictCharField,
    StrictIntegerField,
    StrictSerializer,
)
from generation.events import job_payload
from generation.models import GenerationJob


def instructions_field() -> StrictCharField:
    """Free text for one regeneration, added to the prompt (kept as typed, spaces included)."""
    return StrictCharField(
        required=False, allow_blank=True, max_length=2000, default="", trim_whitespace=False
    )


class TargetSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=GenerationJob.TargetType.choices)
    id = serializers.IntegerField()


class JobSerializer(serializers.Serializer):
    """Declares the job's JSON for the schema; the payload itself comes from the domain
    (`events.job_payload`), so live events and the API cannot drift apart."""

    id = serializers.IntegerField()
    type = serializers.ChoiceField(choices=GenerationJob.Type.choices)
    status = serializers.ChoiceField(choices=GenerationJob.Status.choices)
    progress = serializers.IntegerField()
    attempts = serializers.IntegerField()
    error = serializers.CharField()
    project_id = serializers.IntegerField()
    target = TargetSerializer()
    parent_id = serializers.IntegerField(allow_null=True)
    result = serializers.JSONField(allow_null=True)
    provider_request_ids = serializers.ListField(child=serializers.CharField())
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)

    def to_representation(self, instance: GenerationJob) -> dict:
        return job_payload(instance)


class DryRun(StrictSerializer):
    dry_run = StrictBooleanField(
        required=False,
        default=False,
        help_text="true: answer 200 {estimate} with what this request would spend (the job and "
        "what follows it by itself up to the next checkpoint) and start nothing.",
    )


class ProjectRef(DryRun):
    project_id = StrictIntegerField(min_value=1)


class CharacterJobRequest(ProjectRef):
    count = StrictIntegerField(min_value=1, max_value=10, default=4)
    instructions = instructions_field()


class ExactlyOneId(DryRun):
    """A job on one unit or a whole project: exactly one of the `*_id` fields."""

    def validate(self, attrs):
        ids = [name for name in self.fields if name.endswith("_id")]
        if sum(name in attrs for name in ids) != 1:
            raise serializers.ValidationError(f"Give exactly one of {' or '.join(ids)}.")
        return attrs


class FrameJobRequest(ExactlyOneId):
    project_id = StrictIntegerField(min_value=1, required=False)
    scene_id = StrictIntegerField(min_value=1, required=False)


class VideoJobRequest(ExactlyOneId):
    project_id = StrictIntegerField(min_value=1, required=False)
    frame_id = StrictIntegerField(min_value=1, required=False)
    instructions = instructions_field()

    def validate(self, attrs):
        attrs = super().validate(attrs)
        if attrs.get("instructions") and "frame_id" not in attrs:
            raise serializers.ValidationError(
                {"instructions": ["Instructions go with one frame (frame_id)."]}
            )
        return attrs


class PortraitJobRequest(DryRun):
    character_id = StrictIntegerField(min_value=1)
    instructions = instructions_field()


class KeyframeJobRequest(DryRun):
    frame_id = StrictIntegerField(min_value=1)
    instructions = instructions_field()


class ReferenceJobRequest(DryRun):
    object_id = StrictIntegerField(min_value=1)
    instructions = instructions_field()


class ImageEditRequest(ExactlyOneId):
    character_id = StrictIntegerField(min_value=1, required=False)
    frame_id = StrictIntegerField(min_value=1, required=False)
    object_id = StrictIntegerField(
        min_value=1,
        required=False,
        help_text="An object's reference image (beyond the v2 contract, which names "
        "character_id and frame_id only).",
    )
    instruction = StrictCharField(
        max_length=2000, help_text="What to change; the rest of the image is kept."
    )


class RefreshRequest(StrictSerializer):
    dry_run = StrictBooleanField(required=False, default=False)


# --- money -----------------------------------------------------------------------------------


class RateSerializer(serializers.Serializer):
    provider = serializers.CharField()
    model = serializers.CharField(help_text="`*`: every model of the provider.")
    unit = serializers.CharField(
        help_text="What `usd` buys: `image`, `video_second`, `1M_input_tokens`, "
        "`1M_output_tokens`, `1M_audio_tokens`."
    )
    usd = serializers.FloatField()
    as_of = serializers.CharField(help_text="When the price was read from `source`.")
    source = serializers.CharField()
    effective_from = serializers.DateField(
        allow_null=True,
        help_text="An addition: the day (UTC) from which this is the price; null: always.",
    )


class EstimateItemSerializer(serializers.Serializer):
    stage = serializers.CharField()
    provider = serializers.CharField()
    model = serializers.CharField()
    count = serializers.FloatField(help_text="How many `unit`s.")
    unit = serializers.CharField(help_text="input_tokens, output_tokens, image, video_second")
    usd = serializers.FloatField()


class EstimateSerializer(serializers.Serializer):
    total_usd = serializers.FloatField()
    items = EstimateItemSerializer(many=True)
    spent_usd = serializers.FloatField()
    budget_usd = serializers.FloatField(allow_null=True)
    remaining_usd = serializers.FloatField(allow_null=True)


class DryRunAnswer(serializers.Serializer):
    estimate = EstimateSerializer()


class SpendEntrySerializer(serializers.Serializer):
    job_id = serializers.IntegerField(allow_null=True)
    unit = serializers.SerializerMethodField()
    stage = serializers.CharField()
    provider = serializers.CharField()
    model = serializers.CharField()
    quantity = serializers.FloatField()
    quantity_unit = serializers.CharField(help_text="tokens, image, video_second")
    usage = serializers.DictField(help_text="The provider's figures as reported.")
    usd = serializers.FloatField()
    created_at = serializers.DateTimeField()

    def get_unit(self, entry) -> dict:
        return {"type": entry.unit_type, "id": entry.unit_id}


# --- sound -----------------------------------------------------------------------------------


class AudioJobRequest(ExactlyOneId):
    project_id = StrictIntegerField(min_value=1, required=False)
    frame_id = StrictIntegerField(min_value=1, required=False)


class VoiceSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="What a character's `voice` takes.")
    provider = serializers.CharField(help_text="`gemini` or `local` (eSpeak NG, offline).")
    name = serializers.CharField()
    description = serializers.CharField()
