"""`python manage.py apply_retention [--dry-run] [--rule KIND]`: apply the retention rules now,
or show what they would touch."""

from django.core.management.base import BaseCommand
from django.utils.translation import gettext as _

from customers import retention
from customers.erasure_models import RetentionRule


class Command(BaseCommand):
    help = _(
        "Apply the enabled retention rules (the nightly run), or with --dry-run list for every "
        "rule how many records it would erase or strip, and which, changing nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--dry-run", action="store_true", help=_("Report only; change nothing.")
        )
        parser.add_argument(
            "--rule",
            action="append",
            choices=RetentionRule.Kind.values,
            help=_("Only this rule (may be given more than once)."),
        )

    def handle(self, *args, dry_run, rule, **options):
        results = retention.apply_rules(dry_run=dry_run, kinds=rule)
        if not results:
            self.stdout.write(_("No retention rule is enabled."))
        for result in results:
            rule = result.rule
            state = _("enabled") if rule.enabled else _("disabled")
            self.stdout.write(
                _("%(rule)s (%(kind)s, %(days)s days, %(state)s): %(count)s matching")
                % {
                    "rule": rule,
                    "kind": rule.kind,
                    "days": rule.days,
                    "state": state,
                    "count": result.matching,
                }
                + ("" if dry_run else _(", %(changed)s changed") % {"changed": result.changed})
            )
            for record_id in result.ids:
                self.stdout.write(f"  {record_id}")
            if result.matching > len(result.ids):
                self.stdout.write(
                    "  " + _("… and %(more)s more") % {"more": result.matching - len(result.ids)}
                )
