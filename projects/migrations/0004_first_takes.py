"""Every file generated before takes existed becomes its unit's first, current take: nothing is
lost on upgrade. Their inputs were not recorded, so they carry none (`inputs_hash` empty): the
staleness check takes the inputs as they stand as their baseline."""

from django.db import migrations


def forwards(apps, schema_editor):
    Take = apps.get_model("projects", "Take")
    Character = apps.get_model("projects", "Character")
    Frame = apps.get_model("projects", "Frame")
    Video = apps.get_model("projects", "Video")
    Project = apps.get_model("projects", "Project")
    for character in Character.objects.exclude(image="").filter(take__isnull=True):
        take = Take.objects.create(
            project_id=character.project_id, kind="portrait", character=character,
            file=character.image, provider="legacy",
        )
        Character.objects.filter(pk=character.pk).update(take=take)
    for frame in Frame.objects.exclude(image="").filter(keyframe_take__isnull=True).select_related(
        "scene"
    ):
        take = Take.objects.create(
            project_id=frame.scene.project_id, kind="keyframe", frame=frame, file=frame.image,
            prompt=frame.prompt, provider="legacy",
        )
        Frame.objects.filter(pk=frame.pk).update(keyframe_take=take)
    for video in Video.objects.exclude(file="").filter(take__isnull=True).select_related(
        "frame__scene"
    ):
        take = Take.objects.create(
            project_id=video.frame.scene.project_id, kind="clip", frame_id=video.frame_id,
            file=video.file, duration=video.duration, provider="legacy",
        )
        Video.objects.filter(pk=video.pk).update(take=take)
    for project in Project.objects.exclude(final_video="").filter(film_take__isnull=True):
        take = Take.objects.create(
            project=project, kind="film", file=project.final_video,
            duration=project.final_duration, provider="legacy",
        )
        Project.objects.filter(pk=project.pk).update(film_take=take)


def backwards(apps, schema_editor):
    """The files stay where the units point; only the take rows go."""
    apps.get_model("projects", "Take").objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [("projects", "0003_takes")]
    operations = [migrations.RunPython(forwards, backwards)]
