"""`python manage.py archive_history`: move old months of history to the archive tables.

The monthly Celery task does the same. Every run is recorded in the audit trail.
"""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from customers import partitions


class Command(BaseCommand):
    help = _(
        "Move the interactions and orders of every whole month older than "
        "ARCHIVE_HISTORY_AFTER_MONTHS months (0: never) from the live tables to the archive "
        "tables, one month per transaction. With --dry-run, only say what would move."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--dry-run", action="store_true", help=_("Change nothing; list what would move.")
        )
        parser.add_argument(
            "--after-months",
            type=int,
            default=settings.ARCHIVE_HISTORY_AFTER_MONTHS,
            help=_("Archive months older than this many months (default %(default)s)."),
        )

    def handle(self, *args, dry_run, after_months, **options):
        if after_months < 0:
            raise CommandError(_("--after-months must not be negative."))
        if after_months == 0:
            self.stdout.write(_("Archiving is off (0 months): nothing moved."))
        months = partitions.archive_history(months=after_months, dry_run=dry_run)
        for done in months:
            values = {"table": done.table, "month": f"{done.month:%Y-%m}", "rows": f"{done.rows:,}"}
            if dry_run:
                self.stdout.write(_("%(table)s %(month)s: %(rows)s rows would move.") % values)
            else:
                values["seconds"] = done.seconds
                self.stdout.write(
                    _("%(table)s %(month)s: %(rows)s rows archived in %(seconds).2f s.") % values
                )
        if after_months and not months:
            self.stdout.write(_("No month is old enough to archive."))
