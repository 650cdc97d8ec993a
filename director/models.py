from django.conf import settings
from django.db import models

from projects.models import Project


class DirectorSession(models.Model):
    """One conversation with the director; its events go to the channel `director-{id}`."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="director_sessions"
    )
    # The project and page of the latest turn (a conversation may follow the user around).
    project = models.ForeignKey(
        Project,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="director_sessions",
    )
    page = models.CharField(max_length=32)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["user", "-created_at"], name="director_session_user")]

    def __str__(self) -> str:
        return f"Director session {self.pk}"


class DirectorTurn(models.Model):
    """One user message and everything the director did about it."""

    class Status(models.TextChoices):
        RUNNING = "running"
        COMPLETE = "complete"
        FAILED = "failed"

    session = models.ForeignKey(DirectorSession, on_delete=models.CASCADE, related_name="turns")
    page = models.CharField(max_length=32)
    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    provider = models.CharField(max_length=16, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["session", "status"], name="director_turn_status")]

    def __str__(self) -> str:
        return f"Turn {self.pk} of session {self.session_id} ({self.status})"


class DirectorMessage(models.Model):
    """What was said: the user's text, the model's text and calls, the tools' results.

    `function_calls` holds `{name, args}` on assistant messages and `{name, args, result}` on
    tool messages (result null for UI tools, which the client carries out).
    """

    class Role(models.TextChoices):
        USER = "user"
        ASSISTANT = "assistant"
        TOOL = "tool"

    session = models.ForeignKey(DirectorSession, on_delete=models.CASCADE, related_name="messages")
    turn = models.ForeignKey(DirectorTurn, on_delete=models.CASCADE, related_name="messages")
    role = models.CharField(max_length=16, choices=Role.choices)
    text = models.TextField(blank=True)
    function_calls = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.role} message {self.pk}"


class DirectorConfirmation(models.Model):
    """A tool call that spends money or replaces content, held until the person confirms it.

    Only the token's SHA-256 is stored (the token itself goes out once, in the `confirm`
    event); `call_hash` pins the exact tool and arguments the token stands for."""

    session = models.ForeignKey(
        DirectorSession, on_delete=models.CASCADE, related_name="confirmations"
    )
    turn = models.ForeignKey(DirectorTurn, on_delete=models.CASCADE, related_name="confirmations")
    token_hash = models.CharField(max_length=64, unique=True)
    tool = models.CharField(max_length=64)
    args = models.JSONField(default=dict, blank=True)
    call_hash = models.CharField(max_length=64)
    summary = models.TextField()
    estimate = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"Confirmation {self.pk} of {self.tool} in session {self.session_id}"
