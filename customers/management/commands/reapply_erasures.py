"""`python manage.py reapply_erasures [--database ALIAS]`: erase again whoever a restore brought
back. Runs by itself after `restore`; run it by hand after restoring a database otherwise."""

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from customers import erasure


class Command(BaseCommand):
    help = _(
        "Apply every erasure in the erasure ledger to the database again, so that customers "
        "erased after a backup was made stay erased when it is restored."
    )

    def add_arguments(self, parser):
        parser.add_argument("--database", default="default", help=_("Database alias."))

    def handle(self, *args, database, **options):
        try:
            restored = erasure.reapply_erasures(using=database)
        except erasure.LedgerTampered as error:
            raise CommandError(str(error)) from None
        self.stdout.write(
            _("%(count)s erased customers had data back and were erased again.")
            % {"count": len(restored)}
        )
        for customer_id in restored:
            self.stdout.write(f"  {customer_id}")
