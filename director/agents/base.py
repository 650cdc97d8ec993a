"""What a director model is asked: given the turn so far, say something and/or call tools."""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from director.models import DirectorMessage
from director.pages import Page
from director.tools import Tool, ToolOutcome


@dataclass(frozen=True)
class Call:
    name: str
    args: dict

    def as_dict(self) -> dict:
        return {"name": self.name, "args": self.args}


@dataclass(frozen=True)
class Step:
    """One model response: the text it streamed and the tools it wants called."""

    text: str
    calls: list[Call] = field(default_factory=list)
    raw: Any = None  # the provider's own form, fed back verbatim (Gemini: thought signatures)


@dataclass(frozen=True)
class Round:
    step: Step
    outcomes: list[ToolOutcome]


@dataclass(frozen=True)
class TurnInput:
    system: str
    page: Page
    tools: list[Tool]
    history: list[DirectorMessage]  # earlier turns, whole
    message: str
    project_id: int | None
    rounds: list[Round]  # this turn's earlier steps and their tool results
    final: bool = False  # the tool-round cap is reached: answer without calling tools


class Director(Protocol):
    name: str

    def step(self, turn: TurnInput, on_delta: Callable[[str], None]) -> Step:
        """Stream text through `on_delta` as it is produced; return the whole step."""
        ...


def configured_director(local: Callable[[], Director], *, what: str) -> Director:
    """The Gemini director when DIRECTOR_PROVIDER says so (`auto`: when it has keys), else
    `local()` (director turns and agent runs each have their offline one)."""
    choice = settings.DIRECTOR_PROVIDER
    if choice == "auto":
        choice = "gemini" if settings.GEMINI_API_KEYS else "local"
    if choice == "gemini":
        # google-genai loads only when the director uses it
        from director.agents.gemini import GeminiDirector  # noqa: PLC0415 (heavy SDK)

        return GeminiDirector()
    if choice == "local":
        return local()
    raise ImproperlyConfigured(f"DIRECTOR_PROVIDER={choice!r} cannot {what}: use gemini or local")
