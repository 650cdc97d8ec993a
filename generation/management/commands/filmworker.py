from django.core.management import call_command
from django.core.management.base import BaseCommand

from filmstudio.support import rqworker_arguments


class Command(BaseCommand):
    help = (
        "Run a pipeline worker: rqworker on every queue, with the scheduler and the queues' "
        "serializer (settings.RQ_QUEUES), as settings.RQ['WORKER_CLASS']. The Procfile, compose, "
        "the tests and the benchmarks all start workers with this command."
    )

    def add_arguments(self, parser):
        parser.add_argument("--worker-class", help="another worker class (an experiment)")
        parser.add_argument("--burst", action="store_true", help="quit once the queues are empty")
        parser.add_argument("--name", help="the worker's name in Redis")

    def handle(self, *args, worker_class: str | None, burst: bool, name: str | None, **options):
        extra = ["--burst"] if burst else []
        if worker_class:
            extra += ["--worker-class", worker_class]
        if name:
            extra += ["--name", name]
        call_command("rqworker", *rqworker_arguments(), *extra, verbosity=options["verbosity"])
