"""Object names unique per project, case aside. Objects already named alike (possible before
this) get a number after the name ("Lamp (2)"), so the constraint never fails on them."""

import django.db.models.functions.text
from django.db import migrations, models


def number_duplicates(apps, schema_editor):
    ProjectObject = apps.get_model("projects", "ProjectObject")
    taken: dict[int, set[str]] = {}
    for obj in ProjectObject.objects.order_by("project_id", "id"):
        names = taken.setdefault(obj.project_id, set())
        name, n = obj.name, 1
        while name.lower() in names:
            n += 1
            suffix = f" ({n})"
            name = obj.name[: 120 - len(suffix)] + suffix
        names.add(name.lower())
        if name != obj.name:
            ProjectObject.objects.filter(pk=obj.pk).update(name=name)


class Migration(migrations.Migration):
    dependencies = [
        ("projects", "0009_objects"),
    ]

    operations = [
        migrations.RunPython(number_duplicates, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="projectobject",
            constraint=models.UniqueConstraint(
                django.db.models.functions.text.Lower("name"),
                models.F("project"),
                name="object_name_unique_per_project",
                violation_error_message="The project already has an object of this name.",
            ),
        ),
    ]
