"""Helpers every app's services share."""

from collections.abc import Iterable
from typing import Any, TypeVar

from django.db import models

M = TypeVar("M", bound=models.Model)


def model_update(*, instance: M, fields: Iterable[str], data: dict[str, Any]) -> tuple[M, bool]:
    """Set the given `fields` found in `data` that differ, validate, save only those.

    Returns the instance and whether anything changed (a no-op edit saves nothing)."""
    changed = [f for f in fields if f in data and getattr(instance, f) != data[f]]
    if not changed:
        return instance, False
    for name in changed:
        setattr(instance, name, data[name])
    instance.full_clean()
    update_fields = [*changed]
    if any(f.name == "updated_at" for f in instance._meta.get_fields()):
        update_fields.append("updated_at")
    instance.save(update_fields=update_fields)
    return instance, True
