"""What a director model is asked: given the turn so far, say something and/or call tools."""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

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
