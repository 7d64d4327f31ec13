"""`python manage.py find_duplicates`: look for likely duplicate customers now.

The same scan the nightly Celery task and the finder's "Search again now" run, here in the
foreground, with how long it took.
"""

import time

from django.core.management.base import BaseCommand
from django.utils.translation import gettext as _

from customers import duplicates


class Command(BaseCommand):
    help = _(
        "Find customers who are probably the same person and replace the list of possible "
        "duplicates with them (the nightly scan, run now)."
    )

    def handle(self, *args, **options):
        started = time.monotonic()
        scan, _created = duplicates.queued_or_new_scan()
        pairs = duplicates.refresh_candidates(scan)
        self.stdout.write(
            _("%(pairs)s possible duplicates found in %(seconds).1f s.")
            % {"pairs": f"{pairs:,}", "seconds": time.monotonic() - started}
        )
