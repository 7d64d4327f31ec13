"""`python manage.py create_partitions`: make the coming months' partitions of the history.

The nightly Celery task does the same; running it again does nothing more.
"""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from customers import partitions


class Command(BaseCommand):
    help = _(
        "Create the monthly partitions of interactions and orders for the current month and "
        "the months ahead (PARTITION_MONTHS_AHEAD by default), moving into them any rows the "
        "default partition holds for those months. Safe to run again."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--months-ahead",
            type=int,
            default=settings.PARTITION_MONTHS_AHEAD,
            help=_("How many months after the current one (default %(default)s)."),
        )

    def handle(self, *args, months_ahead, **options):
        if not 0 <= months_ahead <= 120:
            raise CommandError(_("--months-ahead must be between 0 and 120."))
        created = partitions.create_partitions(months_ahead=months_ahead)
        for table, months in created.items():
            for month, moved in months:
                self.stdout.write(
                    _("%(table)s: partition for %(month)s created, %(rows)s rows moved into it.")
                    % {"table": table, "month": f"{month:%Y-%m}", "rows": f"{moved:,}"}
                )
        if not any(created.values()):
            self.stdout.write(_("Every partition was there already."))
