from decimal import Decimal

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.urls import path
from django.utils.html import format_html

from filmstudio.exceptions import ConflictError
from generation import services as pipeline
from media.signing import blob_url
from projects import services
from projects.admin_cast import cast_approval_view
from projects.models import Character, Frame, Project, ProjectObject, Scene, Take, Video
from projects.takes import take_is_current


def thumbnail(name: str, height: int = 72):
    url = blob_url(name)
    if not url:
        return "—"
    return format_html('<img src="{}" style="height:{}px;border-radius:4px" alt="">', url, height)


class ReadOnly:
    """Clips, and the scenes and frames shown inline, change only through the pipeline."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


def player(name: str, width: int = 240):
    url = blob_url(name)
    if not url:
        return "—"
    return format_html(
        '<video src="{}" controls preload="metadata" style="width:{}px"></video>', url, width
    )


class CharacterInline(admin.TabularInline):
    model = Character
    extra = 0
    fields = ["portrait", "name", "role", "status", "description"]
    # Edits go through the character's own page (and character_update), not this formset.
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    show_change_link = True

    @admin.display(description="Portrait")
    def portrait(self, obj: Character):
        return thumbnail(obj.image)


class SceneInline(ReadOnly, admin.TabularInline):
    model = Scene
    extra = 0
    fields = ["order", "title", "location", "mood", "status"]
    readonly_fields = fields
    show_change_link = True


class ProjectAdminForm(forms.ModelForm):
    refusal: str | None = None  # why project_update refused this change, on the second pass

    def clean_budget_usd(self):
        """As the API: none, or 0 to MAX_BUDGET_USD dollars."""
        budget = self.cleaned_data.get("budget_usd")
        ceiling = Decimal(str(settings.MAX_BUDGET_USD))
        if budget is not None and not 0 <= budget <= ceiling:
            raise forms.ValidationError(f"A budget is between $0 and ${ceiling:,.2f}.")
        return budget

    def clean_checkpoints(self):
        try:
            return services.checkpoints_clean(self.cleaned_data.get("checkpoints"))
        except ValidationError as error:
            raise forms.ValidationError(error.message_dict["checkpoints"]) from None

    def clean(self):
        cleaned = super().clean()
        if self.refusal:
            raise forms.ValidationError(self.refusal)
        return cleaned


@admin.action(description="Approve the storyboard")
def approve_storyboard(modeladmin, request, queryset):
    started = 0
    for project in queryset:
        try:
            pipeline.storyboard_approve(project=project)
            started += 1
        except ConflictError as error:
            modeladmin.message_user(request, f"{project}: {error.message}", messages.WARNING)
    if started:
        modeladmin.message_user(
            request, f"Video generation started for {started} project(s).", messages.SUCCESS
        )


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    form = ProjectAdminForm
    actions = [approve_storyboard]
    list_display = [
        "title",
        "owner",
        "status",
        "progress",
        "spent_usd",
        "budget_usd",
        "aspect_ratio",
        "created_at",
    ]
    list_filter = ["status", "aspect_ratio", "genre"]
    search_fields = ["title", "logline", "owner__username"]
    list_select_related = ["owner"]
    # budget_usd is edited here through project_update, as by the API: raising it resumes a
    # project paused for its budget. What the ledger holds and running jobs reserved only show.
    readonly_fields = [
        "status",
        "progress",
        "spent_usd",
        "reserved_usd",
        "final_film",
        "final_duration",
        "created_at",
    ]
    inlines = [CharacterInline, SceneInline]
    autocomplete_fields = ["owner"]

    @admin.display(description="Final film")
    def final_film(self, obj: Project):
        return player(obj.final_video, width=480)

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change, **kwargs)
        form.refusal = getattr(request, "project_refusal", None)
        return form

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except ConflictError as error:
            # The service refused under the project lock and the whole change rolled back (the
            # admin runs it in one transaction): show the form again with the reason, as for a
            # validation error, instead of saving the owner and saying "changed".
            request.project_refusal = error.message
            return super().changeform_view(request, object_id, form_url, extra_context)

    def save_model(self, request, obj, form, change):
        """Edits go through the same service as the API (and its 409 rules)."""
        if not change:
            fields = {k: form.cleaned_data[k] for k in services.PROJECT_FIELDS}
            obj.pk = services.project_create(owner=obj.owner, **fields).pk
            return None
        saved = Project.objects.get(pk=obj.pk)
        fields = {
            k: form.cleaned_data[k] for k in form.changed_data if k in services.PROJECT_FIELDS
        }
        with transaction.atomic():
            pipeline.project_update(project=saved, **fields)
            if "owner" in form.changed_data:
                Project.objects.filter(pk=obj.pk).update(owner=obj.owner)
        return None

    def delete_model(self, request, obj):
        pipeline.project_delete(project=obj)

    def delete_queryset(self, request, queryset):
        with transaction.atomic():
            for project in queryset:
                pipeline.project_delete(project=project)

    def get_deleted_objects(self, objs, request):
        # project_delete removes the whole hierarchy (cancelling active jobs first), so the
        # read-only scenes, frames and clips and the active jobs below it do not block it.
        deleted, counts, _, protected = super().get_deleted_objects(objs, request)
        return deleted, counts, set(), protected


def _decide(modeladmin, request, queryset, decide):
    done = 0
    for character in queryset.select_related("project"):
        try:
            decide(character=character)
            done += 1
        except ConflictError as error:
            modeladmin.message_user(request, f"{character}: {error.message}", messages.WARNING)
    if done:
        modeladmin.message_user(request, f"{done} character(s) updated.", messages.SUCCESS)


@admin.action(description="Approve selected characters")
def approve(modeladmin, request, queryset):
    _decide(modeladmin, request, queryset, pipeline.character_approve)


@admin.action(description="Reject selected characters")
def reject(modeladmin, request, queryset):
    _decide(modeladmin, request, queryset, pipeline.character_reject)


class TakeInline(ReadOnly, admin.TabularInline):
    """Every take of the unit, newest first; select one on its own page (`Take` admin)."""

    model = Take
    extra = 0
    fields = ["preview", "kind", "current", "instructions", "provider", "model", "created_at"]
    readonly_fields = fields
    show_change_link = True

    @admin.display(description="Take")
    def preview(self, obj: Take):
        return (
            player(obj.file)
            if obj.kind in (Take.Kind.CLIP, Take.Kind.FILM)
            else thumbnail(obj.file)
        )

    @admin.display(boolean=True)
    def current(self, obj: Take) -> bool:
        return take_is_current(obj)


class CharacterTakeInline(TakeInline):
    fk_name = "character"


class FrameTakeInline(TakeInline):
    fk_name = "frame"


@admin.action(description="Make the selected take current (nothing is regenerated)")
def make_current(modeladmin, request, queryset):
    for take in queryset:
        try:
            pipeline.take_select(take=take)
        except ConflictError as error:
            modeladmin.message_user(request, f"Take {take.pk}: {error.message}", messages.ERROR)
        else:
            modeladmin.message_user(request, f"Take {take.pk} is current.")


@admin.register(Take)
class TakeAdmin(ReadOnly, admin.ModelAdmin):
    list_display = ["pk", "preview", "kind", "project", "current", "provider", "created_at"]
    list_filter = ["kind", "provider"]
    list_select_related = ["project"]
    search_fields = ["prompt", "instructions", "project__title"]
    fields = [
        "project",
        "kind",
        "character",
        "frame",
        "object",
        "preview",
        "prompt",
        "instructions",
        "provider",
        "model",
        "seed",
        "cost_usd",
        "duration",
        "inputs",
        "inputs_hash",
        "source_job_id",
        "created_at",
    ]
    readonly_fields = fields
    actions = [make_current]
    preview = TakeInline.preview
    current = TakeInline.current

    def has_change_permission(self, request, obj=None):
        return obj is None  # the list (and its action) shows; a take never changes


@admin.register(Character)
class CharacterAdmin(admin.ModelAdmin):
    list_display = ["portrait", "name", "role", "project", "status", "created_at"]
    list_display_links = ["portrait", "name"]
    list_filter = ["status"]
    search_fields = ["name", "role", "description", "project__title"]
    list_select_related = ["project"]
    readonly_fields = ["portrait_large", "status", "rejection_reason", "project"]
    fields = ["project", "portrait_large", *services.CHARACTER_FIELDS, "status", "rejection_reason"]
    actions = [approve, reject]
    inlines = [CharacterTakeInline]

    @admin.display(description="Portrait")
    def portrait(self, obj: Character):
        return thumbnail(obj.image)

    @admin.display(description="Portrait")
    def portrait_large(self, obj: Character):
        return thumbnail(obj.image, height=256)

    def has_add_permission(self, request):
        return False  # characters come from the pipeline

    def save_model(self, request, obj, form, change):
        saved = Character.objects.get(pk=obj.pk)
        fields = {
            k: form.cleaned_data[k] for k in form.changed_data if k in services.CHARACTER_FIELDS
        }
        try:
            services.character_update(character=saved, **fields)
        except ConflictError as error:
            self.message_user(request, error.message, messages.ERROR)

    def get_urls(self):
        view = self.admin_site.admin_view(lambda request: cast_approval_view(request, self))
        cast = path("cast-approval/", view, name="projects_character_cast_approval")
        return [cast, *super().get_urls()]  # before the catch-all "<path:object_id>/"


class FrameInline(ReadOnly, admin.TabularInline):
    model = Frame
    extra = 0
    fields = ["order", "keyframe", "prompt", "camera", "status"]
    readonly_fields = fields
    show_change_link = True

    @admin.display(description="Keyframe")
    def keyframe(self, obj: Frame):
        return thumbnail(obj.image)


class RefusableForm(forms.ModelForm):
    refusal: str | None = None  # why the service refused this change, on the second pass

    def clean(self):
        cleaned = super().clean()
        if self.refusal:
            raise forms.ValidationError(self.refusal)
        return cleaned


class EditedByService:
    """Scenes and frames come from the pipeline and go with their project; their text is edited
    here through the same service as the API. When it refuses, nothing is saved and the form
    shows the reason."""

    form = RefusableForm

    def has_add_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change, **kwargs)
        form.refusal = getattr(request, "service_refusal", None)
        return form

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except ConflictError as error:
            # As on the project page: the change rolled back, show the form with the reason.
            request.service_refusal = error.message
            return super().changeform_view(request, object_id, form_url, extra_context)


@admin.register(ProjectObject)
class ProjectObjectAdmin(admin.ModelAdmin):
    """Props and places: created, edited and deleted through the services (creating one
    starts the drawing of its reference image)."""

    list_display = ["reference", "name", "project", "created_at"]
    list_display_links = ["reference", "name"]
    search_fields = ["name", "description", "project__title"]
    list_select_related = ["project"]
    fields = ["project", "reference_large", "name", "description"]

    def get_readonly_fields(self, request, obj=None):
        return ["project", "reference_large"] if obj else ["reference_large"]

    @admin.display(description="Reference")
    def reference(self, obj: ProjectObject):
        return thumbnail(obj.image, 48)

    @admin.display(description="Reference image")
    def reference_large(self, obj: ProjectObject):
        return thumbnail(obj.image, 240)

    def save_model(self, request, obj, form, change):
        fields = {k: form.cleaned_data[k] for k in ("name", "description")}
        if change:
            pipeline.object_update(obj=ProjectObject.objects.get(pk=obj.pk), **fields)
            return
        try:
            obj.pk = pipeline.object_create(project=form.cleaned_data["project"], **fields).pk
        except ConflictError as error:
            raise ValidationError(error.message) from None

    def delete_model(self, request, obj):
        pipeline.object_delete(obj=obj)

    def get_deleted_objects(self, objs, request):
        # Its takes go with it (the service deletes them and their files); they have no
        # delete permission of their own.
        deleted, counts, _, protected = super().get_deleted_objects(objs, request)
        return deleted, counts, set(), protected

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            pipeline.object_delete(obj=obj)


@admin.register(Scene)
class SceneAdmin(EditedByService, admin.ModelAdmin):
    list_display = ["title", "order", "project", "status", "location", "mood"]
    list_filter = ["status"]
    search_fields = ["title", "concise_plot", "project__title"]
    list_select_related = ["project"]
    fields = ["project", "order", *services.SCENE_FIELDS, "status", "characters"]
    readonly_fields = ["project", "order", "status", "characters"]
    inlines = [FrameInline]

    def save_model(self, request, obj, form, change):
        fields = {k: form.cleaned_data[k] for k in form.changed_data if k in services.SCENE_FIELDS}
        pipeline.scene_update(scene=Scene.objects.get(pk=obj.pk), **fields)


class VideoInline(ReadOnly, admin.StackedInline):
    model = Video
    extra = 0
    fields = ["status", "clip", "duration"]
    readonly_fields = ["status", "clip", "duration"]

    @admin.display(description="Clip")
    def clip(self, obj: Video):
        return player(obj.file)


@admin.register(Frame)
class FrameAdmin(EditedByService, admin.ModelAdmin):
    list_display = ["keyframe", "__str__", "status", "camera", "duration"]
    list_filter = ["status"]
    search_fields = ["prompt", "dialogue", "scene__title"]
    list_select_related = ["scene"]
    fields = [
        "scene",
        "order",
        "keyframe_large",
        *services.FRAME_FIELDS,
        "speaker",
        "status",
        "duration",
    ]
    readonly_fields = ["scene", "order", "keyframe_large", "speaker", "status", "duration"]
    inlines = [VideoInline, FrameTakeInline]

    def save_model(self, request, obj, form, change):
        fields = {k: form.cleaned_data[k] for k in form.changed_data if k in services.FRAME_FIELDS}
        pipeline.frame_update(frame=Frame.objects.get(pk=obj.pk), **fields)

    @admin.display(description="Keyframe")
    def keyframe(self, obj: Frame):
        return thumbnail(obj.image, height=48)

    @admin.display(description="Keyframe")
    def keyframe_large(self, obj: Frame):
        return thumbnail(obj.image, height=256)


@admin.register(Video)
class VideoAdmin(ReadOnly, admin.ModelAdmin):
    list_display = ["__str__", "status", "duration", "updated_at"]
    list_filter = ["status"]
    readonly_fields = ["frame", "status", "clip", "duration"]
    fields = ["frame", "status", "clip", "duration"]

    @admin.display(description="Clip")
    def clip(self, obj: Video):
        return player(obj.file)
