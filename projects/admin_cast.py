"""The producer's cast approval view in the admin: pending characters grouped by project.

Every decision goes through projects.services, so approving the last pending character opens
the gate (scene generation starts) exactly as it does from the API or the director.
"""

from itertools import groupby

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict
from django.shortcuts import redirect
from django.template.response import TemplateResponse

from filmstudio.api import ID
from filmstudio.exceptions import ConflictError
from generation import services as pipeline
from generation.voices import offered as voices_offered
from media.signing import blob_url
from projects.models import Character, Project


def _pending() -> list[Character]:
    characters = list(
        Character.objects.filter(status=Character.Status.PENDING)
        .select_related("project", "project__owner")
        .order_by("project_id", "id")
    )
    for character in characters:
        character.image_url = blob_url(character.image)
    return characters


def _decided_counts(project_ids: list[int]) -> dict[int, dict[str, int]]:
    counts: dict[int, dict[str, int]] = {pk: {} for pk in project_ids}
    rows = Character.objects.filter(project_id__in=project_ids).values_list("project_id", "status")
    for project_id, status in rows:
        counts[project_id][status] = counts[project_id].get(status, 0) + 1
    return counts


def _groups(characters: list[Character]) -> list[dict]:
    grouped = [
        (project, list(members))
        for project, members in groupby(characters, key=lambda c: c.project)
    ]
    counts = _decided_counts([project.pk for project, _ in grouped])
    return [
        {"project": project, "characters": members, "counts": counts[project.pk]}
        for project, members in grouped
    ]


def _chosen(post: QueryDict) -> tuple[str, list[str]]:
    """(action, character ids) from a per-card button or the bulk buttons."""
    for action in ("approve", "reject"):
        if post.get(action):
            return action, [post[action]]
    action = post.get("bulk", "")
    return action, post.getlist("selected")


def _decide(request: HttpRequest, character: Character, action: str) -> None:
    post = request.POST
    if action == "approve":
        edits = {}
        description = post.get(f"description-{character.pk}")
        if description is not None and description != character.description:
            edits["description"] = description
        voice = post.get(f"voice-{character.pk}")
        if voice is not None and voice != character.voice:
            edits["voice"] = voice  # checked against the speech provider's voices
        if edits:
            pipeline.character_update(character=character, **edits)
        pipeline.character_approve(character=character)
    else:
        reason = post.get(f"reason-{character.pk}", "").strip() or post.get("reason", "").strip()
        pipeline.character_reject(character=character, reason=reason)


def _handle_post(request: HttpRequest) -> HttpResponseRedirect:
    action, ids = _chosen(request.POST)
    ids = [pk for pk in ids if ID.fullmatch(pk)]
    if action not in ("approve", "reject") or not ids:
        messages.warning(request, "Select at least one character, then approve or reject.")
        return redirect("admin:projects_character_cast_approval")
    done = []
    characters = list(Character.objects.filter(pk__in=ids).select_related("project"))
    before = {c.project_id: c.project.status for c in characters}
    for character in characters:
        try:
            _decide(request, character, action)
            done.append(character.name)
        except ConflictError as error:
            messages.warning(request, f"{character.name}: {error.message}")
        except ValidationError as error:
            messages.error(request, f"{character.name}: {'; '.join(error.messages)}")
    if done:
        verb = "Approved" if action == "approve" else "Rejected"
        messages.success(request, f"{verb}: {', '.join(done)}.")
    # The services open the gate themselves; say so, since it is what the producer waits for.
    opened = Project.objects.filter(pk__in=before, status=Project.Status.GENERATING_SCENES)
    for project in opened:
        if before[project.pk] != project.status:
            messages.info(
                request, f"The cast of “{project.title}” is settled: scene generation has started."
            )
    return redirect("admin:projects_character_cast_approval")


def cast_approval_view(request: HttpRequest, model_admin: admin.ModelAdmin) -> HttpResponse:
    if not model_admin.has_change_permission(request):
        raise PermissionDenied
    if request.method == "POST":
        return _handle_post(request)
    context = {
        **model_admin.admin_site.each_context(request),
        "title": "Cast approval",
        "opts": model_admin.model._meta,
        "groups": _groups(_pending()),
        "voices": voices_offered(),
        "awaiting": Project.objects.filter(status=Project.Status.AWAITING_APPROVAL).count(),
    }
    return TemplateResponse(request, "admin/projects/character/cast_approval.html", context)
