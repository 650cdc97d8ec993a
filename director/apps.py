from django.apps import AppConfig


class DirectorConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "director"

    def ready(self) -> None:
        from director.selectors import may_read_session_channel
        from filmstudio.streams import register_channel

        register_channel("director", may_read_session_channel)
