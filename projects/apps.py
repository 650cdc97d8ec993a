from django.apps import AppConfig


class ProjectsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "projects"

    def ready(self) -> None:
        from filmstudio.streams import register_channel
        from projects.events import may_read_project_channel

        register_channel("project", may_read_project_channel)
