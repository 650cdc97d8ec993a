from django.conf import settings
from django.contrib import admin, messages
from django.db.models import Q

from generation import services
from generation.models import GenerationJob, SpendEntry, UserLimit
from generation.selectors import spend_users, user_limits

ACTIVE = GenerationJob.ACTIVE


@admin.register(GenerationJob)
class GenerationJobAdmin(admin.ModelAdmin):
    list_display = ["id", "type", "status", "progress", "attempts", "project", "created_at"]
    list_filter = ["status", "type"]
    search_fields = ["id", "project__title", "error"]
    list_select_related = ["project"]
    readonly_fields = [f.name for f in GenerationJob._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        # A worker or the watchdog still owns an active job: cancel it first (the API or the
        # project page). The delete confirmation asks this for the children too.
        if obj is not None and obj.is_active:
            return False
        return super().has_delete_permission(request, obj)

    def delete_model(self, request, obj):
        self.delete_queryset(request, GenerationJob.objects.filter(pk=obj.pk))

    def delete_queryset(self, request, queryset):
        # The confirmation page refused active jobs; one that became active since then stays.
        busy = queryset.filter(Q(status__in=ACTIVE) | Q(children__status__in=ACTIVE)).distinct()
        kept = list(busy.values_list("pk", flat=True))
        queryset.exclude(pk__in=kept).delete()
        if kept:
            self.message_user(
                request, f"Kept {len(kept)} active job(s): cancel them first.", messages.WARNING
            )


@admin.register(UserLimit)
class UserLimitAdmin(admin.ModelAdmin):
    """A user's daily spend cap and cap on concurrently active projects; blank is the default
    (settings USER_DAILY_SPEND_USD, USER_MAX_ACTIVE_PROJECTS), and the page shows what holds."""

    list_display = [
        "user",
        "daily_spend_usd",
        "effective_daily_spend",
        "max_active_projects",
        "effective_max_active",
        "updated_at",
    ]
    search_fields = ["user__username", "user__email"]
    list_select_related = ["user"]
    autocomplete_fields = ["user"]
    fields = [
        "user",
        "daily_spend_usd",
        "max_active_projects",
        "effective_daily_spend",
        "effective_max_active",
        "spent_last_24h",
        "updated_at",
    ]
    readonly_fields = [
        "effective_daily_spend",
        "effective_max_active",
        "spent_last_24h",
        "updated_at",
    ]

    def get_readonly_fields(self, request, obj=None):
        # the user of an existing row stays (another user gets a row of their own)
        return [*self.readonly_fields, "user"] if obj else self.readonly_fields

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        resumed = services.limits_changed(obj.user_id)  # paused work tries again
        if resumed:
            self.message_user(request, f"{resumed} paused job(s) of {obj.user} resumed.")

    @admin.display(description="Daily cap in force")
    def effective_daily_spend(self, obj: UserLimit) -> str:
        if not obj.user_id:
            return f"${settings.USER_DAILY_SPEND_USD:.2f} (default)"
        limits = user_limits(obj.user_id)
        default = " (default)" if obj.daily_spend_usd is None else ""
        return f"${limits.daily_spend_usd:.2f}{default}"

    @admin.display(description="Active projects in force")
    def effective_max_active(self, obj: UserLimit) -> str:
        if not obj.user_id:
            return f"{settings.USER_MAX_ACTIVE_PROJECTS} (default)"
        limits = user_limits(obj.user_id)
        default = " (default)" if obj.max_active_projects is None else ""
        return f"{limits.max_active_projects}{default}"

    @admin.display(description="Spent or reserved, last 24 h")
    def spent_last_24h(self, obj: UserLimit) -> str:
        if not obj.user_id:
            return "—"
        return f"${spend_users([obj.user_id])[obj.user_id]['spent_24h_usd']:.2f}"


@admin.register(SpendEntry)
class SpendEntryAdmin(admin.ModelAdmin):
    """The ledger, read only: rows are written by the pipeline with what the calls made."""

    list_display = [
        "created_at",
        "project",
        "user",
        "stage",
        "provider",
        "model",
        "quantity",
        "quantity_unit",
        "usd",
        "job_id",
    ]
    list_filter = ["provider", "stage", "quantity_unit"]
    search_fields = ["project__title", "user__username", "model", "call_id"]
    list_select_related = ["project", "user"]
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in SpendEntry._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
