"""Jobs' JSON and the job requests' bodies, shared by the API and the director's tools."""

from rest_framework import serializers

from filmstudio.serializers import StrictCharField, StrictIntegerField, StrictSerializer
from generation.events import job_payload
from generation.models import GenerationJob


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


class ProjectRef(StrictSerializer):
    project_id = StrictIntegerField(min_value=1)


class CharacterJobRequest(ProjectRef):
    count = StrictIntegerField(min_value=1, max_value=10, default=4)
    instructions = StrictCharField(required=False, allow_blank=True, max_length=2000, default="")


class ExactlyOneId(StrictSerializer):
    def validate(self, attrs):
        if len(attrs) != 1:
            raise serializers.ValidationError(f"Give exactly one of {' or '.join(self.fields)}.")
        return attrs


class FrameJobRequest(ExactlyOneId):
    project_id = StrictIntegerField(min_value=1, required=False)
    scene_id = StrictIntegerField(min_value=1, required=False)


class VideoJobRequest(StrictSerializer):
    project_id = StrictIntegerField(min_value=1, required=False)
    frame_id = StrictIntegerField(min_value=1, required=False)
    instructions = StrictCharField(
        required=False, allow_blank=True, max_length=2000, trim_whitespace=False
    )

    def validate(self, attrs):
        if ("project_id" in attrs) == ("frame_id" in attrs):
            raise serializers.ValidationError("Give exactly one of project_id or frame_id.")
        if "instructions" in attrs and "frame_id" not in attrs:
            raise serializers.ValidationError(
                {"instructions": ["Instructions go with one frame (frame_id)."]}
            )
        return attrs
