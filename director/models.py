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


class AgentRun(models.Model):
    """The director driving a project's whole pipeline toward a goal (`director.runs`).

    Its state is here, not in a process: each advance is an `agent-run` job that reads this
    row and the project, acts through the same tools and services as every client, and ends.
    Events go to the channel `agentrun-{id}` and are kept in `AgentRunEvent` for the log."""

    class Status(models.TextChoices):
        RUNNING = "running"
        AWAITING_DECISION = "awaiting_decision"
        COMPLETE = "complete"
        FAILED = "failed"
        CANCELLED = "cancelled"

    ACTIVE = (Status.RUNNING, Status.AWAITING_DECISION)

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="agent_runs")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="agent_runs"
    )
    goal = models.TextField(max_length=2000)
    status = models.CharField(max_length=24, choices=Status.choices, default=Status.RUNNING)
    planner = models.CharField(max_length=16, blank=True)  # local or gemini
    # What the run may spend (USD, null: the project's budget only); applied as the project's
    # budget when the run starts (director.services.run_start).
    budget_usd = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    spent_at_start_usd = models.DecimalField(max_digits=12, decimal_places=6, default=0)
    checkpoints = models.JSONField(default=list, blank=True)  # cast, storyboard
    # The checkpoint it awaits a decision on ("" when none): cast, storyboard or spend.
    checkpoint_kind = models.CharField(max_length=16, blank=True)
    checkpoint_summary = models.TextField(blank=True)
    checkpoint_estimate = models.JSONField(default=dict, blank=True)
    # A paid tool call over AGENT_CONFIRM_ABOVE_USD, held until the person approves it.
    held_call = models.JSONField(null=True, blank=True)
    # The decision to act on at the next advance ({kind, decision, notes}), then none.
    decision = models.JSONField(null=True, blank=True)
    notes = models.JSONField(
        default=list, blank=True
    )  # every decision: {kind, decision, notes, at}
    set_up = models.BooleanField(default=False)  # the goal was turned into the project's start
    advances = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)  # its latest advance
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["project", "status"], name="agent_run_project_status")]

    def __str__(self) -> str:
        return f"Agent run {self.pk} ({self.status})"


class AgentRunEvent(models.Model):
    """One event of a run, as published on its channel (the run's log)."""

    run = models.ForeignKey(AgentRun, on_delete=models.CASCADE, related_name="events")
    type = models.CharField(
        max_length=16
    )  # status, action, log, checkpoint, decision, complete, error
    data = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.type} event {self.pk} of run {self.run_id}"
