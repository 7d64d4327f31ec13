import os
import tempfile
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils.translation import ngettext

from accounts import audit
from reports.exports import FORMATS, ExportRefused, write
from reports.models import SavedReport


class Command(BaseCommand):
    help = (
        "Run a saved report or analysis as a user, with that user's permissions, and write it "
        'to a file: run_report "Customers by province" --as manager --format xlsx '
        "--output province.xlsx. The report must be the user's own or shared with them."
    )

    def add_arguments(self, parser):
        parser.add_argument("name", help="The saved report's name.")
        parser.add_argument(
            "--as", dest="username", required=True, help="Run with this user's permissions."
        )
        parser.add_argument("--format", dest="fmt", required=True, choices=FORMATS)
        parser.add_argument("--output", required=True, help="The file to write.")
        parser.add_argument(
            "--owner",
            help="The report owner's username, when reports of the same name are shared "
            "with the user by several people.",
        )

    def handle(self, *args, name, username, fmt, output, owner=None, **options):
        user = get_user_model().objects.filter(username=username, is_active=True).first()
        if user is None:
            raise CommandError(f"No active user {username!r}.")
        report = self._report(user, name, owner)
        try:
            table = report.table(user)
            rows = self._write(table, fmt, Path(output))
        except ExportRefused as refusal:
            raise CommandError(str(refusal)) from None
        except (ValidationError, ValueError) as error:
            messages = getattr(error, "messages", [str(error)])
            raise CommandError(f"The report cannot be run: {' '.join(messages)}") from None
        with transaction.atomic():
            audit.record(
                audit.Action.EXPORT,
                target=report,
                actor=user,
                data={
                    "what": f"report: {report.name}",
                    "format": fmt,
                    "rows": rows,
                    "filters": [[label, value] for label, value in table.filters],
                    "via": "run_report",
                },
            )
        self.stdout.write(
            ngettext(
                "%(count)s row written to %(file)s.", "%(count)s rows written to %(file)s.", rows
            )
            % {"count": f"{rows:,}", "file": output}
        )

    def _report(self, user, name, owner):
        reports = SavedReport.objects.visible_to(user).filter(name=name).select_related("owner")
        if owner:
            reports = reports.filter(owner__username=owner)
        found = list(reports[:10])
        if not found:
            raise CommandError(f"No report {name!r} that {user.get_username()!r} may run.")
        own = [r for r in found if r.owner_id == user.pk]
        if own:
            return own[0]
        if len(found) > 1:
            owners = ", ".join(sorted(r.owner.get_username() for r in found))
            raise CommandError(
                f"Several reports are called {name!r} (owners: {owners}); give --owner."
            )
        return found[0]

    @staticmethod
    def _write(table, fmt, path):
        # Written next to the target and moved into place: a failed run leaves no half file.
        directory = path.parent if str(path.parent) else Path(".")
        descriptor, temporary = tempfile.mkstemp(dir=directory, prefix=".run_report-")
        try:
            with os.fdopen(descriptor, "wb") as fileobj:
                rows = write(table, fmt, fileobj)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return rows
