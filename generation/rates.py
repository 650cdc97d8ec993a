"""The rate card: what each provider's model costs per unit, as dated data (`rates.json`, rows
replaced or added by the file named in `RATE_CARD_FILE`). The offline provider costs nothing."""

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

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

    def as_dict(self) -> dict:
        return {**asdict(self), "usd": float(self.usd)}


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
            )
            for row in document["rates"]
        ]
    except (OSError, ValueError, KeyError, TypeError, ArithmeticError) as error:
        raise ImproperlyConfigured(f"rate card {path}: {type(error).__name__}: {error}") from None


@lru_cache(maxsize=8)
def _card(override: str) -> dict[tuple[str, str, str], Rate]:
    rates = {(r.provider, r.model, r.unit): r for r in _rows(CARD)}
    if override:
        rates.update({(r.provider, r.model, r.unit): r for r in _rows(Path(override))})
    negative = [r for r in rates.values() if r.usd < 0]
    if negative:
        raise ImproperlyConfigured(f"rate card: negative price for {negative[0]}")
    return rates


def rate_card() -> list[Rate]:
    return sorted(
        _card(settings.RATE_CARD_FILE).values(), key=lambda r: (r.provider, r.model, r.unit)
    )


def rate_unit(quantity_unit: str) -> str:
    """The rate card's unit for a quantity: tokens are priced per million."""
    return f"1M_{quantity_unit}" if quantity_unit.endswith("_tokens") else quantity_unit


def unit_price(provider: str, model: str, quantity_unit: str) -> Decimal:
    """USD for one `quantity_unit` (one token, one image, one second of video)."""
    unit = rate_unit(quantity_unit)
    card = _card(settings.RATE_CARD_FILE)
    rate = card.get((provider, model, unit)) or card.get((provider, ANY_MODEL, unit))
    if rate is None:
        raise MissingRate(
            f"No price for {provider} {model} per {unit} in the rate card: add it "
            "(generation/rates.json, or a file named by RATE_CARD_FILE) before using this model."
        )
    return rate.usd / 1_000_000 if unit.startswith("1M_") else rate.usd


def cost(provider: str, model: str, parts: Mapping[str, float]) -> Decimal:
    """What `parts` (quantity unit -> amount, e.g. input_tokens: 812) cost on the card."""
    total = sum(
        (
            unit_price(provider, model, unit) * Decimal(str(amount))
            for unit, amount in parts.items()
        ),
        Decimal(0),
    )
    return total.quantize(Decimal("0.000001"))
