from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower


class Timestamped(models.Model):
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


CHECKPOINTS = ("cast", "storyboard")


def default_checkpoints() -> list[str]:
    return ["cast"]


class Project(Timestamped):
    class Status(models.TextChoices):
        DRAFT = "draft"
        GENERATING_CHARACTERS = "generating_characters"
        AWAITING_APPROVAL = "awaiting_approval"
        GENERATING_SCENES = "generating_scenes"
        GENERATING_FRAMES = "generating_frames"
        GENERATING_VIDEOS = "generating_videos"
        AWAITING_STORYBOARD_APPROVAL = "awaiting_storyboard_approval"
        STITCHING = "stitching"
        PAUSED_BUDGET = "paused_budget"
        COMPLETE = "complete"
        FAILED = "failed"
        CANCELLED = "cancelled"

    class AspectRatio(models.TextChoices):
        WIDE = "16:9"
        TALL = "9:16"
        SQUARE = "1:1"

    class Music(models.TextChoices):
        NONE = "none"
        GENERATED = "generated"  # an offline stand-in bed, made at stitch time
        UPLOAD = "upload"  # `music_file`, uploaded by the producer

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="projects"
    )
    title = models.CharField(max_length=200)
    logline = models.TextField(blank=True, max_length=2000)
    synopsis = models.TextField(blank=True, max_length=20000)
    genre = models.CharField(max_length=100, blank=True)
    style = models.CharField(max_length=200, blank=True)
    num_scenes = models.PositiveSmallIntegerField(
        default=3, validators=[MinValueValidator(1), MaxValueValidator(30)]
    )
    frames_per_scene = models.PositiveSmallIntegerField(
        default=3, validators=[MinValueValidator(1), MaxValueValidator(12)]
    )
    clip_seconds = models.PositiveSmallIntegerField(
        default=5, validators=[MinValueValidator(2), MaxValueValidator(10)]
    )
    aspect_ratio = models.CharField(
        max_length=5, choices=AspectRatio.choices, default=AspectRatio.WIDE
    )
    status = models.CharField(max_length=32, choices=Status.choices, default=Status.DRAFT)
    progress = models.PositiveSmallIntegerField(default=0, validators=[MaxValueValidator(100)])
    final_video = models.CharField(max_length=300, blank=True, editable=False)
    final_poster = models.CharField(max_length=300, blank=True, editable=False)
    final_duration = models.FloatField(null=True, blank=True, editable=False)
    film_take = models.ForeignKey(
        "Take", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )
    # Where the pipeline stops for the producer: "cast" always, "storyboard" before any clip.
    checkpoints = models.JSONField(default=default_checkpoints, blank=True)
    # Sound: the music under the film, and whether the subtitles are burnt into the picture.
    music = models.CharField(max_length=16, choices=Music.choices, default=Music.NONE)
    music_file = models.CharField(max_length=300, blank=True, editable=False)
    burn_subtitles = models.BooleanField(default=False)
    # Money (generation.costs): the producer's limit (None = none), what the ledger holds, and
    # what running jobs have reserved but not settled yet. Kept beside the rows they sum, in the
    # transactions that change them, under this row's lock.
    budget_usd = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    # A keyframe scored below this (0..1) is drawn again with the judge's issues (None: the
    # MIN_CONSISTENCY setting with the Gemini judge, off with the offline one).
    min_consistency = models.FloatField(
        null=True, blank=True, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)]
    )
    spent_usd = models.DecimalField(max_digits=14, decimal_places=6, default=0, editable=False)
    reserved_usd = models.DecimalField(max_digits=14, decimal_places=6, default=0, editable=False)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["owner", "-created_at"], name="project_owner_recent")]
        constraints = [
            models.CheckConstraint(
                condition=Q(num_scenes__gte=1, num_scenes__lte=30), name="project_num_scenes_range"
            ),
            models.CheckConstraint(
                condition=Q(frames_per_scene__gte=1, frames_per_scene__lte=12),
                name="project_frames_per_scene_range",
            ),
            models.CheckConstraint(
                condition=Q(clip_seconds__gte=2, clip_seconds__lte=10),
                name="project_clip_seconds_range",
            ),
            models.CheckConstraint(
                condition=Q(aspect_ratio__in=["16:9", "9:16", "1:1"]),
                name="project_aspect_ratio_valid",
            ),
            models.CheckConstraint(condition=Q(progress__lte=100), name="project_progress_range"),
            models.CheckConstraint(
                condition=Q(budget_usd__isnull=True) | Q(budget_usd__gte=0),
                name="project_budget_not_negative",
            ),
        ]

    def __str__(self) -> str:
        return self.title


class Character(Timestamped):
    class Status(models.TextChoices):
        GENERATING = "generating"
        PENDING = "pending"
        APPROVED = "approved"
        REJECTED = "rejected"
        FAILED = "failed"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="characters")
    name = models.CharField(max_length=120)
    role = models.CharField(max_length=120, blank=True)
    description = models.TextField(blank=True, max_length=5000)
    appearance = models.TextField(blank=True, max_length=5000)
    personality = models.TextField(blank=True, max_length=5000)
    # A voice id of the speech provider (`GET /api/voices`); given at character generation.
    voice = models.CharField(max_length=64, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.GENERATING)
    rejection_reason = models.TextField(blank=True, max_length=2000)
    image = models.CharField(max_length=300, blank=True, editable=False)
    take = models.ForeignKey(
        "Take", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )
    # The job that generated it and its place in that job: a re-run updates, never duplicates.
    source_job_id = models.BigIntegerField(null=True, blank=True, editable=False)
    slot = models.PositiveSmallIntegerField(default=0, editable=False)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["project", "status"], name="character_project_status")]
        constraints = [
            models.UniqueConstraint(
                fields=["source_job_id", "slot"],
                condition=Q(source_job_id__isnull=False),
                name="character_unique_job_slot",
            )
        ]

    def __str__(self) -> str:
        return self.name


class ProjectObject(Timestamped):
    """A prop or a place that must look the same in every shot that uses it: its reference
    image (a `reference` take) goes with the keyframes of the scenes that list it."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="project_objects")
    name = models.CharField(max_length=120)
    description = models.TextField(blank=True, max_length=5000)
    image = models.CharField(max_length=300, blank=True, editable=False)
    take = models.ForeignKey(
        "Take", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )

    class Meta:
        ordering = ["id"]
        verbose_name = "object"
        constraints = [
            # The scene plan offers the names as one enum and reads the model's back by name:
            # two objects called "Lamp" and "lamp" would be one choice.
            models.UniqueConstraint(
                Lower("name"),
                "project",
                name="object_name_unique_per_project",
                violation_error_message="The project already has an object of this name.",
            )
        ]

    def __str__(self) -> str:
        return self.name


class UnitStatus(models.TextChoices):
    PENDING = "pending"
    GENERATING = "generating"
    READY = "ready"
    FAILED = "failed"


class Scene(Timestamped):
    Status = UnitStatus

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="scenes")
    order = models.PositiveSmallIntegerField()
    title = models.CharField(max_length=200, blank=True)
    concise_plot = models.TextField(blank=True)
    detailed_plot = models.TextField(blank=True)
    dialogue = models.TextField(blank=True)
    location = models.CharField(max_length=200, blank=True)
    mood = models.CharField(max_length=100, blank=True)
    status = models.CharField(max_length=16, choices=UnitStatus.choices, default=UnitStatus.PENDING)
    characters = models.ManyToManyField(Character, related_name="scenes", blank=True)
    # Its props and places (`object_ids`): their reference images go with its keyframes.
    project_objects = models.ManyToManyField(ProjectObject, related_name="scenes", blank=True)
    # The model named none of the cast although the scene's text speaks of them: the whole
    # approved cast was put in instead (so every keyframe still gets their portraits).
    cast_fallback = models.BooleanField(default=False, editable=False)
    source_job_id = models.BigIntegerField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["order"]
        constraints = [
            models.UniqueConstraint(fields=["project", "order"], name="scene_unique_order")
        ]

    def __str__(self) -> str:
        return f"{self.order}. {self.title}"


class Frame(Timestamped):
    Status = UnitStatus

    scene = models.ForeignKey(Scene, on_delete=models.CASCADE, related_name="frames")
    order = models.PositiveSmallIntegerField()
    prompt = models.TextField(blank=True)
    camera = models.CharField(max_length=200, blank=True)
    dialogue = models.TextField(blank=True)
    duration = models.FloatField(default=5)
    # Who speaks the dialogue: a character of the scene, or null for the narrator.
    speaker = models.ForeignKey(
        Character, null=True, blank=True, on_delete=models.SET_NULL, related_name="lines"
    )
    # Who is in the shot (some of its scene's cast): the keyframe gets exactly their portraits.
    # None named: the scene's cast (`projects.cast.shot_cast`).
    characters = models.ManyToManyField(Character, related_name="shots", blank=True)
    status = models.CharField(max_length=16, choices=UnitStatus.choices, default=UnitStatus.PENDING)
    image = models.CharField(max_length=300, blank=True, editable=False)
    keyframe_take = models.ForeignKey(
        "Take", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )
    # Its dialogue spoken: the current `line` take (a WAV file).
    line_take = models.ForeignKey(
        "Take", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )
    source_job_id = models.BigIntegerField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["order"]
        constraints = [
            models.UniqueConstraint(fields=["scene", "order"], name="frame_unique_order")
        ]

    def __str__(self) -> str:
        return f"Frame {self.order} of scene {self.scene_id}"


class Video(Timestamped):
    class Status(models.TextChoices):
        QUEUED = "queued"
        GENERATING = "generating"
        READY = "ready"
        FAILED = "failed"

    frame = models.OneToOneField(Frame, on_delete=models.CASCADE, related_name="video")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    file = models.CharField(max_length=300, blank=True, editable=False)
    duration = models.FloatField(null=True, blank=True, editable=False)
    take = models.ForeignKey(
        "Take", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )

    class Meta:
        indexes = [models.Index(fields=["status"], name="video_status")]

    def __str__(self) -> str:
        return f"Clip of frame {self.frame_id}"


class Take(models.Model):
    """One generated asset, immutable: the file and what produced it. Regenerating adds a take
    and makes it current (the unit points at it); older takes stay until the project goes.

    `inputs` is the canonical document of everything that shaped it (texts, parent takes, format);
    `inputs_hash` its hash. A unit is stale when the hash of its inputs now differs."""

    class Kind(models.TextChoices):
        PORTRAIT = "portrait"
        KEYFRAME = "keyframe"
        CLIP = "clip"
        LINE = "line"
        FILM = "film"
        REFERENCE = "reference"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="takes")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    character = models.ForeignKey(
        Character, null=True, blank=True, on_delete=models.CASCADE, related_name="takes"
    )
    frame = models.ForeignKey(
        Frame, null=True, blank=True, on_delete=models.CASCADE, related_name="takes"
    )
    object = models.ForeignKey(
        ProjectObject, null=True, blank=True, on_delete=models.CASCADE, related_name="takes"
    )
    file = models.CharField(max_length=300)
    duration = models.FloatField(null=True, blank=True)
    prompt = models.TextField(blank=True)
    instructions = models.TextField(blank=True)
    provider = models.CharField(max_length=32, blank=True)
    model = models.CharField(max_length=120, blank=True)
    seed = models.BigIntegerField(null=True, blank=True)
    cost_usd = models.DecimalField(max_digits=12, decimal_places=6, default=0)
    inputs = models.JSONField(default=dict, blank=True)
    inputs_hash = models.CharField(max_length=64, blank=True)
    # A keyframe scored against the portraits of the characters in it (generation.consistency):
    # {score, per_character: [{character_id, name, score, issues}], checked_by, flagged, tries}.
    consistency = models.JSONField(null=True, blank=True)
    source_job_id = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["character", "kind"], name="take_character_kind"),
            models.Index(fields=["frame", "kind"], name="take_frame_kind"),
            models.Index(fields=["project", "kind"], name="take_project_kind"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(kind="portrait", character__isnull=False, frame__isnull=True)
                    | Q(kind__in=["keyframe", "clip", "line"], frame__isnull=False)
                    | Q(kind="film", frame__isnull=True, object__isnull=True)
                    | Q(
                        kind="reference",
                        object__isnull=False,
                        frame__isnull=True,
                        character__isnull=True,
                    )
                ),
                name="take_kind_matches_unit",
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} take #{self.pk}"
