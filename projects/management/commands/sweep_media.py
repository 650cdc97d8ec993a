"""Delete stored media that nothing references any more, in local storage or S3 alike."""

from datetime import datetime, timedelta

from django.core.files.storage import default_storage
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from media.storage import project_file_names, stored_project_ids
from projects.models import Character, Frame, Project, Take, Video

_REFERENCES = (
    (Project, "final_video"),
    (Project, "final_poster"),
    (Project, "music_file"),
    (Character, "image"),
    (Frame, "image"),
    (Video, "file"),
    (Take, "file"),  # every take is kept until its project goes (rollback), current or not
)
# Hand-off zips are named in their export job's result (a layer above): each export retires
# the one before it, and the project's deletion removes the last, so a live project's are kept.
_KEPT_FOLDERS = ("exports",)


def _kept(name: str) -> bool:
    return name.split("/")[1] in _KEPT_FOLDERS


def referenced_names() -> set[str]:
    names: set[str] = set()
    for model, field in _REFERENCES:
        names.update(model.objects.exclude(**{field: ""}).values_list(field, flat=True))
    return names


def unreferenced_names() -> list[str]:
    """Stored `{project_id}/{type}/{file}` names whose project is gone or whose row is."""
    # List first, then read references: a file referenced by the time we look is kept.
    stored = {pid: project_file_names(pid) for pid in stored_project_ids()}
    live = set(Project.objects.filter(pk__in=stored).values_list("pk", flat=True))
    referenced = referenced_names()
    return [
        name
        for pid, names in stored.items()
        for name in names
        if pid not in live or (name not in referenced and not _kept(name))
    ]


def is_older_than(name: str, cutoff: datetime) -> bool:
    try:
        return default_storage.get_modified_time(name) < cutoff
    except FileNotFoundError:  # deleted meanwhile, e.g. with its project
        return False


class Command(BaseCommand):
    help = "Delete stored media files no row references, or whose project no longer exists."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--min-age",
            type=int,
            default=3600,
            help="Only files older than this many seconds (a file is written before its row).",
        )
        parser.add_argument("--dry-run", action="store_true", help="List, delete nothing.")

    def handle(self, *args, min_age: int, dry_run: bool, **options) -> None:
        if min_age < 0:
            raise CommandError("--min-age must be zero or more seconds.")
        cutoff = timezone.now() - timedelta(seconds=min_age)
        swept = [name for name in unreferenced_names() if is_older_than(name, cutoff)]
        for name in swept:
            if not dry_run:
                default_storage.delete(name)
            self.stdout.write(name)
        verb = "Would delete" if dry_run else "Deleted"
        self.stdout.write(f"{verb} {len(swept)} unreferenced media files.")
