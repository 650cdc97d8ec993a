"""Domain errors. Services raise them; the API layer maps them to HTTP (`filmstudio.api`)."""


class DomainError(Exception):
    """An error a person can act on; `message` says what happened and why."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class ConflictError(DomainError):
    """A request that conflicts with the pipeline's state; the message says why (HTTP 409)."""


class BudgetExceeded(ConflictError):
    """A request whose estimate does not fit what is left of the project's budget (HTTP 409).
    `estimate` is the estimate document that did not fit."""

    def __init__(self, message: str, estimate: dict | None = None):
        super().__init__(message)
        self.estimate = estimate


class LimitExceeded(DomainError):
    """A per-user limit (daily spend, active projects) would be broken (HTTP 429)."""


class RateLimited(LimitExceeded):
    """Too many requests of one kind in a time window; one is free again in `retry_after`
    seconds (HTTP 429 with Retry-After)."""

    def __init__(self, message: str, retry_after: float):
        super().__init__(message)
        self.retry_after = retry_after
