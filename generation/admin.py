from django.contrib import admin

from generation.models import GenerationJob


@admin.register(GenerationJob)
class GenerationJobAdmin(admin.ModelAdmin):
    list_display = ["id", "type", "status", "progress", "attempts", "project", "created_at"]
    list_filter = ["status", "type"]
    search_fields = ["id", "project__title", "error"]
    list_select_related = ["project"]
    readonly_fields = [f.name for f in GenerationJob._meta.fields]

    def has_add_permission(self, request):
        return False
