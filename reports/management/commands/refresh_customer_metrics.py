from django.core.management.base import BaseCommand
from django.utils.translation import ngettext

from reports import metrics
from reports.models import MetricsRefresh


class Command(BaseCommand):
    help = (
        "Recompute every customer's RFM scores, segment and lifetime value now (what the "
        "nightly task does), and the analytics page's cohorts and preferences."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--full",
            action="store_true",
            help="Recompute every lifetime value, not only those whose orders changed.",
        )

    def handle(self, *args, full=False, **options):
        refresh = MetricsRefresh.objects.create()
        changed = metrics.refresh_metrics(refresh, full=full or None, finish=False)
        metrics.warm_order_figures(refresh)
        metrics.finish_refresh(refresh)
        self.stdout.write(
            ngettext(
                "%(count)s customer's figures changed.",
                "%(count)s customers' figures changed.",
                changed,
            )
            % {"count": f"{changed:,}"}
        )
