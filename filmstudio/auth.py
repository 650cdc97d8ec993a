"""API authentication: DRF's token authentication with its lookup compiled once.

The same semantics as `rest_framework.authentication.TokenAuthentication` (the same header
parsing, one query per request, `401` with the same messages for an unknown token or an
inactive user), without compiling the ORM query of the token and its user on every request
(bench 4e).
"""

from django.apps import apps
from django.contrib.auth import get_user_model
from django.utils.translation import gettext_lazy as _
from rest_framework import authentication, exceptions

from filmstudio.queries import CompiledQuery

# Stands for the token's key while its query is compiled (no key has this form).
_KEY = "<compiled-query stand-in: a token key>"


def _user_columns() -> list[str]:
    return [field.attname for field in get_user_model()._meta.concrete_fields]


_TOKEN_USER = CompiledQuery(
    lambda key: (
        get_user_model()
        .objects.filter(auth_token__key=key)
        .values_list(*_user_columns(), "auth_token__created")
    ),
    _KEY,
)
# The user and token models and the user's columns, looked up on first use (the app registry
# is not ready when this module loads).
_models: list = []


class TokenAuthentication(authentication.TokenAuthentication):
    def authenticate_credentials(self, key):
        found = _TOKEN_USER.rows(key)
        if not found:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        if not _models:
            _models[:] = [get_user_model(), _user_columns(), apps.get_model("authtoken", "Token")]
        user_model, columns, token_model = _models
        *values, created = found[0]
        user = user_model.from_db(user_model.objects.db, columns, values)
        if not user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        fields = ["key", "user_id", "created"]
        token = token_model.from_db(token_model.objects.db, fields, [key, user.pk, created])
        token.user = user
        return (user, token)
