"""What a paid provider call used, as the provider reported it, and the meter it goes into.

Providers call `report` after every call they are billed for; the step (or director turn)
running them holds a `Meter` (`generation.costs.metered`), which the ledger is written from.
`for_unit` says which unit the calls inside belong to (a character's portrait, a frame's
keyframe). Context variables carry both into the threads a step runs its calls in
(`steps.common.gather` copies the context)."""

import contextlib
import contextvars
import logging
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from generation.rates import cost

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Usage:
    """One paid call, as the provider reported it. `parts` are what the rate card prices
    (input_tokens, output_tokens, audio_tokens, image, video_second); `quantity` and
    `quantity_unit` are what the ledger shows (tokens, image, video_second)."""

    provider: str
    model: str
    quantity: float
    quantity_unit: str
    parts: Mapping[str, float]
    call_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def usd(self) -> Decimal:
        return cost(self.provider, self.model, self.parts)


Unit = tuple[str, int]  # (unit type, id): what a call worked on


@dataclass
class Meter:
    """The usage reported while a step or a director turn runs, until it is in the ledger."""

    user_id: int
    project_id: int | None
    stage: str
    unit: Unit
    job_id: int | None = None
    pending: list[tuple[Unit, Usage]] = field(default_factory=list)
    written: set[str] = field(default_factory=set)  # call ids recorded with their results


_meter: contextvars.ContextVar[Meter | None] = contextvars.ContextVar("meter", default=None)
_unit: contextvars.ContextVar[Unit | None] = contextvars.ContextVar("meter_unit", default=None)


def report(usage: Usage) -> None:
    """A provider made a paid call: it goes into the running step's meter."""
    meter = _meter.get()
    if meter is None:
        if usage.provider == "local":
            return  # free, and the offline provider also serves as a generator (benches)
        # A call outside any step or turn (a shell, a script): it cannot reach the ledger.
        logger.warning("unmetered %s %s call: %s", usage.provider, usage.model, usage.parts)
        return
    meter.pending.append((_unit.get() or meter.unit, usage))


@contextlib.contextmanager
def for_unit(unit_type: str, unit_id: int) -> Iterator[None]:
    """Calls made inside belong to this unit (a character's portrait, a frame's keyframe)."""
    token = _unit.set((unit_type, unit_id))
    try:
        yield
    finally:
        _unit.reset(token)


def current_meter() -> Meter | None:
    return _meter.get()


@contextlib.contextmanager
def metering(meter: Meter) -> Iterator[Meter]:
    token = _meter.set(meter)
    try:
        yield meter
    finally:
        _meter.reset(token)
