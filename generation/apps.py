from django.apps import AppConfig


class GenerationConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "generation"

    def ready(self) -> None:
        # ready(): the app registry is loading; projects.takes imports models
        from generation.providers import speech_choice  # noqa: PLC0415 (app registry)
        from projects.takes import register_speech_choice  # noqa: PLC0415 (app registry)

        # A line's inputs name the provider and model that speak it (projects knows none).
        register_speech_choice(speech_choice)
