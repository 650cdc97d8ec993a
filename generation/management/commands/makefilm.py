import sys
import time

from django.contrib.auth import get_user_model
from django.core.files.storage import default_storage
from django.core.management.base import BaseCommand, CommandError
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from generation import services as pipeline
from generation.inline import work_once
from projects import services
from projects.models import Character, Project

DONE = {Project.Status.COMPLETE, Project.Status.FAILED, Project.Status.CANCELLED}


class Command(BaseCommand):
    help = "Make a whole film from a logline: cast, approval, scenes, frames, clips, final cut."

    def add_arguments(self, parser):
        parser.add_argument("logline")
        parser.add_argument("--title", default="")
        parser.add_argument("--scenes", type=int, default=3)
        parser.add_argument("--frames", type=int, default=3)
        parser.add_argument("--clip-seconds", type=int, default=5)
        parser.add_argument("--characters", type=int, default=3)
        parser.add_argument("--aspect-ratio", default="16:9", choices=["16:9", "9:16", "1:1"])
        parser.add_argument("--yes", action="store_true", help="approve the whole cast")
        parser.add_argument("--user", default="", help="owner (default: the first superuser)")
        parser.add_argument(
            "--external-workers",
            action="store_true",
            help="leave the jobs to running rqworkers instead of running them here",
        )
        parser.add_argument("--timeout", type=float, default=3600)

    def handle(self, *args, **opts):
        owner = self._owner(opts["user"])
        project = services.project_create(
            owner=owner,
            title=opts["title"] or opts["logline"][:60],
            logline=opts["logline"],
            num_scenes=opts["scenes"],
            frames_per_scene=opts["frames"],
            clip_seconds=opts["clip_seconds"],
            aspect_ratio=opts["aspect_ratio"],
        )
        pipeline.start_character_generation(project=project, count=opts["characters"])
        self.stdout.write(f"Project {project.pk} '{project.title}' for {owner.username}")
        started = time.monotonic()
        with Progress(
            TextColumn("{task.description:<24}"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TimeElapsedColumn(),
            transient=not sys.stdout.isatty(),
        ) as progress:
            bar = progress.add_task("starting", total=100)
            while True:
                busy = False if opts["external_workers"] else work_once()
                project.refresh_from_db()
                progress.update(bar, completed=project.progress, description=project.status)
                if project.status in DONE:
                    break
                if project.status == Project.Status.AWAITING_APPROVAL:
                    self._approve(project, opts["yes"], progress)
                if time.monotonic() - started > opts["timeout"]:
                    raise CommandError(f"gave up after {opts['timeout']} s ({project.status})")
                if not busy:
                    time.sleep(0.2)
        self._report(project, time.monotonic() - started)

    def _owner(self, username: str):
        User = get_user_model()
        if username:
            user = User.objects.filter(username=username).first()
            if user is None:
                raise CommandError(f"no user named {username!r}")
            return user
        user = User.objects.filter(is_superuser=True).order_by("pk").first()
        return user or User.objects.get_or_create(username="director")[0]

    def _approve(self, project: Project, yes: bool, progress) -> None:
        pending = list(project.characters.filter(status=Character.Status.PENDING))
        if not pending:
            return
        if not yes and not sys.stdin.isatty():
            raise CommandError(
                f"The cast of project {project.pk} awaits approval: approve it in the admin or "
                "the API, or run again with --yes."
            )
        for character in pending:
            keep = yes
            if not yes:
                progress.stop()
                answer = input(
                    f"Approve {character.name} ({character.role}): {character.description} [Y/n] "
                )
                keep = answer.strip().lower() not in {"n", "no"}
                progress.start()
            if keep:
                pipeline.character_approve(character=character)
            else:
                pipeline.character_reject(character=character, reason="rejected in makefilm")

    def _report(self, project: Project, seconds: float) -> None:
        if project.status != Project.Status.COMPLETE:
            failed = project.jobs.filter(status="failed").values_list("type", "error")
            details = "; ".join(f"{t}: {e}" for t, e in failed[:5])
            raise CommandError(f"The film did not complete ({project.status}). {details}")
        try:
            where = default_storage.path(project.final_video)
        except NotImplementedError:
            where = project.final_video
        self.stdout.write(
            self.style.SUCCESS(
                f"Final film: {where}\nDuration: {project.final_duration:.2f} s "
                f"({project.num_scenes} scenes x {project.frames_per_scene} frames x "
                f"{project.clip_seconds} s) in {seconds:.1f} s wall time"
            )
        )
