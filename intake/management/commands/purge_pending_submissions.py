"""`python manage.py purge_pending_submissions`: delete submissions that were never verified.

A pending submission touches no customer; one still pending after INTAKE_PENDING_DAYS will not
be verified any more (its code expired long ago). Celery beat runs this daily.
"""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from intake import services


class Command(BaseCommand):
    help = "Delete submissions still waiting for verification after INTAKE_PENDING_DAYS days."

    def add_arguments(self, parser):
        parser.add_argument(
            "--days",
            type=int,
            default=None,
            help=f"Age in days (default INTAKE_PENDING_DAYS, now {settings.INTAKE_PENDING_DAYS}).",
        )

    def handle(self, *args, days=None, **options):
        if days is not None and days < 0:
            raise CommandError("--days must be 0 or more.")
        deleted = services.purge_pending_submissions(days=days)
        self.stdout.write(f"Deleted {deleted} pending submissions.")
