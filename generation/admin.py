from django.contrib import admin, messages
from django.db.models import Q

from generation.models import GenerationJob

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
