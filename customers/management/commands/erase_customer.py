"""`python manage.py erase_customer UUID [--reason request]`: erase one customer's personal data."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from customers import erasure
from customers.erasure_models import ErasureReason
from customers.models import Customer


class Command(BaseCommand):
    help = _(
        "Erase a customer's personal data everywhere (right to be forgotten), keeping their "
        "figures; the erasure is recorded in the audit trail and the erasure ledger."
    )

    def add_arguments(self, parser):
        parser.add_argument("customer", help=_("The customer's id (a UUID)."))
        parser.add_argument(
            "--reason",
            choices=ErasureReason.values,
            default=ErasureReason.REQUEST,
            help=_("Why the customer is erased (default: request)."),
        )
        parser.add_argument(
            "--as", dest="username", default="", help=_("The user erasing, for the records.")
        )
        parser.add_argument("--database", default="default", help=_("Database alias."))

    def handle(self, *args, customer, reason, username, database, **options):
        user = None
        if username:
            user = get_user_model().objects.using(database).filter(username=username).first()
            if user is None:
                raise CommandError(_("No user %(name)s.") % {"name": username})
        try:
            record = erasure.erase_customer(customer, reason=reason, user=user, using=database)
        except (ValueError, Customer.DoesNotExist):
            raise CommandError(_("No customer %(id)s.") % {"id": customer}) from None
        self.stdout.write(
            _("Customer %(id)s erased (%(reason)s).")
            % {"id": record.customer_id, "reason": record.get_reason_display()}
        )
