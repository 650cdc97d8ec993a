import logging
import time

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import close_old_connections

from filmstudio import eventstore
from generation.watchdog import persist_live_events, sweep

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Re-enqueue pipeline steps whose RQ job was lost; loops unless --once."

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="one sweep, then exit")
        parser.add_argument("--interval", type=float, default=None, help="seconds between sweeps")

    def handle(self, *args, once: bool, interval: float | None, **options):
        interval = interval or settings.WATCHDOG_INTERVAL
        while True:
            try:
                resumed = sweep()
                if once or any(resumed.values()):
                    self.stdout.write(f"watchdog: resumed {resumed}")
            except Exception:  # Redis or Postgres restarting: try again next round
                logger.exception("watchdog sweep failed")
                if once:
                    raise
            finally:
                eventstore.flush()  # the sweep's live events, into the replay log at once
                try:
                    persist_live_events()  # and those of job processes killed before their end
                except Exception:
                    logger.exception("could not copy live events into the replay log")
                close_old_connections()
            if once:
                return
            time.sleep(interval)
