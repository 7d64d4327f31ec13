import time

from django.core.management.base import BaseCommand
from django.utils.translation import gettext as _

from reports.models.summaries import rebuild_summaries


class Command(BaseCommand):
    help = (
        "Recount the dashboard's summary tables from the customers and orders, and install "
        "their triggers again (after changing TIME_ZONE, or to check them). Writes to "
        "customers and orders wait while it runs."
    )

    def handle(self, *args, **options):
        started = time.perf_counter()
        rebuild_summaries()
        seconds = time.perf_counter() - started
        message = _("Dashboard summaries rebuilt in %(seconds).1f s.") % {"seconds": seconds}
        self.stdout.write(message)
