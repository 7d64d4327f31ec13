"""`python manage.py verify_audit [--checkpoint]`: check that the audit trail is as written."""

import time

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from accounts import audit


class Command(BaseCommand):
    help = (
        "Walk the audit trail's hash chain and check it against the signed checkpoints; exit "
        "with status 1 naming the first entry that was changed, deleted or reordered."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--checkpoint",
            action="store_true",
            help="After a successful check, sign the trail's head into a new checkpoint.",
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=10_000,
            help="Entries read per query (default 10000).",
        )

    def handle(self, *args, checkpoint, batch_size, **options):
        started = time.monotonic()
        try:
            result = audit.verify_trail(batch_size=batch_size)
            if checkpoint:
                path = audit.write_checkpoint(verified=result, batch_size=batch_size)
            else:
                path = None
        except audit.ChainBroken as broken:
            raise CommandError(
                _("Audit trail broken at entry %(seq)s: %(message)s")
                % {"seq": broken.seq, "message": broken.message}
            ) from None
        except ImproperlyConfigured as error:
            raise CommandError(error) from None
        self.stdout.write(
            _("%(entries)s entries verified up to entry %(seq)s (%(hash)s) in %(seconds).1f s.")
            % {
                "entries": result.entries,
                "seq": result.head_seq,
                "hash": result.head_hash[:16],
                "seconds": time.monotonic() - started,
            }
        )
        if result.checkpoints:
            self.stdout.write(
                _("%(n)s signed checkpoints match the trail.") % {"n": result.checkpoints}
            )
        elif result.entries:
            self.stderr.write(
                _("No checkpoints yet: a trail rewritten from scratch would not be noticed.")
            )
        if path:
            self.stdout.write(_("Checkpoint written: %(path)s") % {"path": path})
