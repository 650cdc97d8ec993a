from django.apps import AppConfig


class DirectorConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "director"

    def ready(self) -> None:
        # ready(): the app registry is loading; these import models
        from director.selectors import (  # noqa: PLC0415 (app registry)
            may_read_run_channel,
            may_read_session_channel,
        )
        from filmstudio.streams import register_channel  # noqa: PLC0415 (app registry)

        register_channel("director", may_read_session_channel)
        register_channel("agentrun", may_read_run_channel)
