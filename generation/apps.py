from django.apps import AppConfig


class GenerationConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "generation"

    def ready(self) -> None:
        # ready(): the app registry is loading; projects.takes imports models
        from generation.providers import speech_choice  # noqa: PLC0415 (app registry)
        from generation.voices import voice_for  # noqa: PLC0415 (app registry)
        from projects.takes import (  # noqa: PLC0415 (app registry)
            register_speech_choice,
            register_voice_lookup,
        )

        # A line's inputs name the provider, model and voice that speak it (projects knows
        # none of them).
        register_speech_choice(speech_choice)
        register_voice_lookup(voice_for)
