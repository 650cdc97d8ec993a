from django.apps import AppConfig


class ProjectsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "projects"

    def ready(self) -> None:
        # ready(): the app registry is loading; these import models
        from filmstudio.streams import register_channel  # noqa: PLC0415 (app registry)
        from projects.events import may_read_project_channel  # noqa: PLC0415 (app registry)

        register_channel("project", may_read_project_channel)
