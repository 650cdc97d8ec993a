from django.conf import settings
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
        AUDIO = "audio-generation"
        IMAGE_EDIT = "image-edit"
        REFERENCE = "reference-generation"
        AGENT_RUN = "agent-run"  # one advance of a director agent run (director.runs)

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        WAITING = "waiting"
        PAUSED = "paused"  # its paid call would exceed the budget: it waits for a higher one
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    class TargetType(models.TextChoices):
        PROJECT = "project"
        SCENE = "scene"
        FRAME = "frame"
        CHARACTER = "character"
        OBJECT = "object"

    ACTIVE = (Status.QUEUED, Status.RUNNING, Status.WAITING, Status.PAUSED)

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
    # What this job reserved of its project's budget before its paid calls (settled on finish).
    reserved_usd = models.DecimalField(max_digits=12, decimal_places=6, default=0)
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


class SpendEntry(models.Model):
    """One paid provider call, from the provider's reported usage, written in the transaction
    that stores what the call made (or, for a call whose result was not kept, when its job
    step ends). The ledger is append-only; the project's `spent_usd` is its sum."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    # A deleted project's calls stay the user's (the daily cap counts them).
    project = models.ForeignKey(
        Project, null=True, blank=True, on_delete=models.SET_NULL, related_name="spend_entries"
    )
    job = models.ForeignKey(
        GenerationJob, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    call_id = models.CharField(max_length=32, unique=True)  # one row per call, never two
    stage = models.CharField(max_length=32)  # the job type, or "director"
    unit_type = models.CharField(max_length=16)  # character, scene, frame, project, session
    unit_id = models.BigIntegerField()
    provider = models.CharField(max_length=32)
    model = models.CharField(max_length=120)
    quantity = models.DecimalField(max_digits=14, decimal_places=3)
    quantity_unit = models.CharField(max_length=24)  # tokens, image, video_second
    usage = models.JSONField(default=dict, blank=True)  # the provider's figures, as reported
    usd = models.DecimalField(max_digits=12, decimal_places=6)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "spend entries"
        indexes = [
            models.Index(fields=["project", "-created_at"], name="spend_project_recent"),
            models.Index(fields=["user", "-created_at"], name="spend_user_recent"),
        ]
        constraints = [models.CheckConstraint(condition=Q(usd__gte=0), name="spend_usd_positive")]

    def __str__(self) -> str:
        return f"{self.provider} {self.model}: ${self.usd}"


class UserLimit(models.Model):
    """Per-user limits that staff set in the admin; a user without a row gets the settings'
    defaults (`USER_DAILY_SPEND_USD`, `USER_MAX_ACTIVE_PROJECTS`). Its row is also the lock that
    serializes one user's reservations across projects."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="spend_limit"
    )
    daily_spend_usd = models.DecimalField(
        max_digits=12, decimal_places=2, null=True, blank=True, help_text="Blank: the default."
    )
    max_active_projects = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="Blank: the default."
    )
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"limits of {self.user}"
