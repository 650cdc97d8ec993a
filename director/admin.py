from django.contrib import admin

from director.models import DirectorMessage, DirectorSession, DirectorTurn


class MessageInline(admin.TabularInline):
    model = DirectorMessage
    fields = ["turn", "role", "text", "function_calls", "created_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False


@admin.register(DirectorSession)
class DirectorSessionAdmin(admin.ModelAdmin):
    list_display = ["id", "user", "project", "page", "created_at"]
    list_filter = ["page"]
    search_fields = ["user__username", "project__title"]
    raw_id_fields = ["user", "project"]
    inlines = [MessageInline]


@admin.register(DirectorTurn)
class DirectorTurnAdmin(admin.ModelAdmin):
    list_display = ["id", "session", "page", "status", "provider", "created_at", "finished_at"]
    list_filter = ["status", "provider", "page"]
    raw_id_fields = ["session", "project"]
    readonly_fields = ["created_at", "finished_at"]
