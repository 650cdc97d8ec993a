"""Domain errors. Services raise them; the API layer maps them to HTTP (`filmstudio.api`)."""


class DomainError(Exception):
    """An error a person can act on; `message` says what happened and why."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class ConflictError(DomainError):
    """A request that conflicts with the pipeline's state; the message says why (HTTP 409)."""
