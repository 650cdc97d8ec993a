"""The rate card: what each provider's model costs per unit, as dated data (`rates.json`, rows
replaced or added by the file named in `RATE_CARD_FILE`). The offline provider costs nothing.

A row may say from which day (UTC) it is the price (`effective_from`): a change the provider
announced is a second row of the same model and unit, and every price is looked up for the
day it is paid (or quoted) on. A row of the `RATE_CARD_FILE` replaces the row of `rates.json`
for the same model, unit and day (an undated one the undated one), and adds the others."""

import datetime
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone

CARD = Path(__file__).with_name("rates.json")
ANY_MODEL = "*"


@dataclass(frozen=True)
class Rate:
    provider: str
    model: str
    unit: str  # what `usd` buys: image, video_second, or 1M_<x>_tokens (per million)
    usd: Decimal
    as_of: str
    source: str = ""
    effective_from: str = ""  # ISO date (UTC) from which this is the price; "" = always

    def as_dict(self) -> dict:
        return {
            **asdict(self),
            "usd": float(self.usd),
            "effective_from": self.effective_from or None,
        }


class MissingRate(ImproperlyConfigured):
    """A paid model with no price: nothing may spend on it until the rate card says."""


def _rows(path: Path) -> list[Rate]:
    try:
        document = json.loads(path.read_text())
        return [
            Rate(
                provider=row["provider"],
                model=row["model"],
                unit=row["unit"],
                usd=Decimal(str(row["usd"])),
                as_of=row["as_of"],
                source=row.get("source", ""),
                effective_from=_day(row.get("effective_from")),
            )
            for row in document["rates"]
        ]
    except (OSError, ValueError, KeyError, TypeError, ArithmeticError) as error:
        raise ImproperlyConfigured(f"rate card {path}: {type(error).__name__}: {error}") from None


def parse_day(value: object) -> datetime.date:
    """A day written YYYY-MM-DD, nothing else (ValueError)."""
    return datetime.datetime.strptime(str(value), "%Y-%m-%d").date()


def _day(value: object) -> str:
    """An `effective_from` as an ISO date ("" for none); anything else is a ValueError."""
    return "" if value in (None, "") else parse_day(value).isoformat()


Key = tuple[str, str, str]  # provider, model, unit


def _by_key(rows: list[Rate]) -> dict[Key, list[Rate]]:
    card: dict[Key, list[Rate]] = {}
    for rate in rows:
        dated = card.setdefault((rate.provider, rate.model, rate.unit), [])
        dated[:] = [r for r in dated if r.effective_from != rate.effective_from] + [rate]
    return card


@lru_cache(maxsize=8)
def _card(override: str) -> dict[Key, list[Rate]]:
    """Each model's unit with its prices, the earliest first."""
    rates = _by_key(_rows(CARD) + (_rows(Path(override)) if override else []))
    negative = [r for dated in rates.values() for r in dated if r.usd < 0]
    if negative:
        raise ImproperlyConfigured(f"rate card: negative price for {negative[0]}")
    return {key: sorted(dated, key=lambda r: r.effective_from) for key, dated in rates.items()}


def today() -> datetime.date:
    """The day prices are looked up for (UTC)."""
    return timezone.now().astimezone(datetime.UTC).date()


def _in_effect(dated: list[Rate], day: datetime.date) -> Rate | None:
    on = day.isoformat()
    current = [r for r in dated if r.effective_from <= on]
    return current[-1] if current else None


def rate_card(day: datetime.date | None = None) -> list[Rate]:
    """The prices in effect on `day` (today)."""
    day = day or today()
    current = (_in_effect(dated, day) for dated in _card(settings.RATE_CARD_FILE).values())
    return sorted(
        (r for r in current if r is not None), key=lambda r: (r.provider, r.model, r.unit)
    )


def rate_unit(quantity_unit: str) -> str:
    """The rate card's unit for a quantity: tokens are priced per million."""
    return f"1M_{quantity_unit}" if quantity_unit.endswith("_tokens") else quantity_unit


def unit_price(
    provider: str, model: str, quantity_unit: str, day: datetime.date | None = None
) -> Decimal:
    """USD for one `quantity_unit` (one token, one image, one second of video) on `day`
    (today)."""
    unit = rate_unit(quantity_unit)
    card, day = _card(settings.RATE_CARD_FILE), day or today()
    # The model's own rows when it has any (none in effect yet is no price), else the provider's.
    dated = card.get((provider, model, unit)) or card.get((provider, ANY_MODEL, unit)) or []
    rate = _in_effect(dated, day)
    if rate is None:
        raise MissingRate(
            f"No price for {provider} {model} per {unit} on {day} in the rate card: add it "
            "(generation/rates.json, or a file named by RATE_CARD_FILE) before using this model."
        )
    return rate.usd / 1_000_000 if unit.startswith("1M_") else rate.usd


def cost(
    provider: str, model: str, parts: Mapping[str, float], day: datetime.date | None = None
) -> Decimal:
    """What `parts` (quantity unit -> amount, e.g. input_tokens: 812) cost on the card on `day`
    (today)."""
    day = day or today()
    total = sum(
        (
            unit_price(provider, model, unit, day) * Decimal(str(amount))
            for unit, amount in parts.items()
        ),
        Decimal(0),
    )
    return total.quantize(Decimal("0.000001"))
