"""Reads for the API, admin and dashboards. Owner scoping lives here and nowhere else."""

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Prefetch, QuerySet
from django.shortcuts import get_object_or_404

from projects.models import Character, Frame, Project, ProjectObject, Scene, Take
from projects.takes import take_states


def projects_for_user(user: AbstractBaseUser | AnonymousUser) -> QuerySet[Project]:
    if not user.is_authenticated:
        return Project.objects.none()
    return Project.objects.filter(owner_id=user.pk)


def project_hierarchy(queryset: QuerySet[Project]) -> QuerySet[Project]:
    """The whole tree in six queries, whatever the project's size."""
    cast = Character.objects.only("id", "name", "status", "take_id").order_by("id")
    frames = (
        Frame.objects.select_related("video", "line_take", "speaker", "keyframe_take")
        .prefetch_related(Prefetch("characters", queryset=cast))
        .order_by("order")
    )
    scenes = Scene.objects.order_by("order").prefetch_related(
        Prefetch("characters", queryset=cast),
        Prefetch("project_objects", queryset=ProjectObject.objects.only("id", "name", "take_id")),
        Prefetch("frames", queryset=frames),
    )
    return queryset.prefetch_related(
        Prefetch("characters", queryset=Character.objects.order_by("id")),
        Prefetch("project_objects", queryset=ProjectObject.objects.order_by("id")),
        Prefetch("scenes", queryset=scenes),
    )


def project_for_user(user, project_id: int) -> Project:
    return get_object_or_404(projects_for_user(user), pk=project_id)


def characters_for_user(user) -> QuerySet[Character]:
    if not user.is_authenticated:
        return Character.objects.none()
    return Character.objects.filter(project__owner=user).select_related("project")


def character_for_user(user, character_id: int) -> Character:
    return get_object_or_404(characters_for_user(user), pk=character_id)


def objects_for_user(user) -> QuerySet[ProjectObject]:
    if not user.is_authenticated:
        return ProjectObject.objects.none()
    return ProjectObject.objects.filter(project__owner=user).select_related("project")


def object_for_user(user, object_id: int) -> ProjectObject:
    return get_object_or_404(objects_for_user(user), pk=object_id)


def scene_for_user(user, scene_id: int) -> Scene:
    if not user.is_authenticated:
        return get_object_or_404(Scene.objects.none())
    return get_object_or_404(
        Scene.objects.filter(project__owner=user).select_related("project"), pk=scene_id
    )


def frame_for_user(user, frame_id: int) -> Frame:
    if not user.is_authenticated:
        return get_object_or_404(Frame.objects.none())
    return get_object_or_404(
        Frame.objects.filter(scene__project__owner=user).select_related("scene__project"),
        pk=frame_id,
    )


def take_for_user(user, take_id: int) -> Take:
    return get_object_or_404(Take.objects.filter(project__in=projects_for_user(user)), pk=take_id)


def hierarchy_take_states(project: Project) -> dict:
    """The takes of every unit of a project fetched with `project_hierarchy` (two queries)."""
    frames = [frame for scene in project.scenes.all() for frame in scene.frames.all()]
    objects = list(project.project_objects.all())
    return take_states(project, list(project.characters.all()), frames, objects)


def scene_with_frames(scene_id: int) -> tuple[Scene, dict]:
    """A scene with its shots and their takes, for a response about the scene."""
    frames = (
        Frame.objects.select_related(
            "video", "scene__project", "line_take", "speaker", "keyframe_take"
        )
        .prefetch_related("characters")
        .order_by("order")
    )
    scene = (
        Scene.objects.select_related("project")
        .prefetch_related("characters", "project_objects", Prefetch("frames", queryset=frames))
        .get(pk=scene_id)
    )
    return scene, take_states(scene.project, [], list(scene.frames.all()))
