"""`python manage.py archive_customers`: move inactive customers to the archive now."""

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from customers import archiving


class Command(BaseCommand):
    # Translated when the command is loaded: argparse needs plain strings.
    help = _(
        "Move customers without any activity for ARCHIVE_CUSTOMERS_AFTER_MONTHS (or --months) "
        "to the archive, with their history, in batches. It can be interrupted and run again."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help=_("Count what would be archived, change nothing."),
        )
        parser.add_argument(
            "--months",
            type=int,
            default=None,
            help=_("Inactive for more than this many months (default: the setting)."),
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=None,
            help=_("Customers per transaction (default: ARCHIVE_BATCH_SIZE)."),
        )
        parser.add_argument(
            "--limit",
            type=int,
            default=None,
            help=_("Stop after about this many customers (the next run continues)."),
        )

    def handle(self, *args, dry_run, months, batch_size, limit, **options):
        self.verbosity = options["verbosity"]
        if months is not None and months < 1:
            raise CommandError(_("--months must be at least 1."))
        if batch_size is not None and batch_size < 1:
            raise CommandError(_("--batch-size must be at least 1."))
        cutoff = archiving.archive_cutoff(months)
        if cutoff is None:
            self.stdout.write(_("Archiving is off (ARCHIVE_CUSTOMERS_AFTER_MONTHS is 0)."))
            return
        if dry_run:
            counts = archiving.inactive_counts(cutoff)
            self.stdout.write(
                _(
                    "Dry run: %(customers)s customers inactive since %(cutoff)s would be "
                    "archived, with %(interactions)s interactions and %(orders)s orders."
                )
                % {**{k: f"{v:,}" for k, v in counts.items()}, "cutoff": f"{cutoff:%Y-%m-%d}"}
            )
            return
        run = archiving.archive_inactive(
            cutoff=cutoff, batch_size=batch_size, limit=limit, progress=self.progress
        )
        rate = run.customers / run.seconds if run.seconds else 0
        self.stdout.write(
            _(
                "Archived %(customers)s customers inactive since %(cutoff)s, with "
                "%(interactions)s interactions and %(orders)s orders, in %(seconds).1f s "
                "(%(rate).0f customers/s)."
            )
            % {
                "customers": f"{run.customers:,}",
                "interactions": f"{run.interactions:,}",
                "orders": f"{run.orders:,}",
                "cutoff": f"{cutoff:%Y-%m-%d}",
                "seconds": run.seconds,
                "rate": rate,
            }
        )

    def progress(self, run):
        if self.verbosity > 1:
            self.stdout.write(_("%(count)s customers archived") % {"count": f"{run.customers:,}"})
