import factory
from django.contrib.auth import get_user_model

from generation.models import GenerationJob
from projects.models import Character, Frame, Project, Scene, Video


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"producer{n}")
    password = factory.django.Password("correct horse battery")


class ProjectFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Project

    owner = factory.SubFactory(UserFactory)
    title = factory.Sequence(lambda n: f"Film {n}")
    logline = "A lighthouse keeper befriends a storm."


class CharacterFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Character

    project = factory.SubFactory(ProjectFactory)
    name = factory.Sequence(lambda n: f"Character {n}")
    role = "lead"
    description = "A weathered keeper"
    status = Character.Status.PENDING


class SceneFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Scene

    project = factory.SubFactory(ProjectFactory)
    order = factory.Sequence(lambda n: n + 1)
    title = factory.Sequence(lambda n: f"Scene {n}")
    status = Scene.Status.READY


class FrameFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Frame

    scene = factory.SubFactory(SceneFactory)
    order = factory.Sequence(lambda n: n + 1)
    prompt = "Waves crash on the rocks"
    status = Frame.Status.READY


class VideoFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Video

    frame = factory.SubFactory(FrameFactory)
    status = Video.Status.READY
    duration = 5.0


class JobFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = GenerationJob

    project = factory.SubFactory(ProjectFactory)
    type = GenerationJob.Type.CHARACTERS
    target_type = GenerationJob.TargetType.PROJECT
    target_id = factory.SelfAttribute("project.id")
