from django.db import models
from django.db.models import Q

from projects.models import Project


class GenerationJob(models.Model):
    """One unit of pipeline work. Postgres is the source of truth; RQ only delivers it."""

    class Type(models.TextChoices):
        CHARACTERS = "character-generation"
        SCENES = "scene-generation"
        FRAMES = "frame-generation"
        VIDEOS = "video-generation"
        STITCH = "video-stitching"
        PORTRAIT = "portrait-generation"
        KEYFRAME = "keyframe-generation"
        REFRESH = "refresh"
        EXPORT = "export"

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        WAITING = "waiting"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    class TargetType(models.TextChoices):
        PROJECT = "project"
        SCENE = "scene"
        FRAME = "frame"
        CHARACTER = "character"

    ACTIVE = (Status.QUEUED, Status.RUNNING, Status.WAITING)

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="jobs")
    type = models.CharField(max_length=32, choices=Type.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    progress = models.PositiveSmallIntegerField(default=0)
    attempts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    traceback = models.TextField(blank=True)
    target_type = models.CharField(max_length=16, choices=TargetType.choices)
    target_id = models.BigIntegerField()
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="children"
    )
    params = models.JSONField(default=dict, blank=True)
    result = models.JSONField(null=True, blank=True)
    provider_request_ids = models.JSONField(default=list, blank=True)
    rq_job_id = models.CharField(max_length=64, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["project", "status"], name="job_project_status"),
            models.Index(fields=["target_type", "target_id"], name="job_target"),
            models.Index(fields=["status", "heartbeat_at"], name="job_status_heartbeat"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(progress__lte=100), name="job_progress_range"),
        ]

    def __str__(self) -> str:
        return f"{self.type} #{self.pk} ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE
