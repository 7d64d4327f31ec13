"""`python manage.py import_customers FILE [--mapping NAME] [--on-duplicate skip|update|create]
[--dry-run] [--as USERNAME]`: import customers from a CSV or XLSX file on the server.

Uses the same engine as the import wizard (customers.imports): the columns are matched by a saved
mapping or recognised from their headers, the import is recorded like one made in the browser
(and can be reverted there), and the problem report is written beside the file as
FILE.errors.csv. Exits with status 1 when any row failed.
"""

import os
import shutil

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from customers import imports
from customers.import_fields import field_label, suggest
from customers.import_files import ImportFileError, inspect
from customers.models import CustomerImport, CustomField, ImportMapping


class Command(BaseCommand):
    help = _(
        "Import customers from a CSV or XLSX file, as the import wizard does; writes the problem "
        "report beside the file (FILE.errors.csv) and exits with status 1 when a row failed."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help=_("The CSV or XLSX file to import."))
        parser.add_argument("--mapping", help=_("The name of a saved column mapping."))
        parser.add_argument(
            "--on-duplicate",
            choices=CustomerImport.OnDuplicate.values,
            default=CustomerImport.OnDuplicate.SKIP,
            help=_("What to do with customers already known (default: skip)."),
        )
        parser.add_argument(
            "--dry-run", action="store_true", help=_("Check the file; change nothing.")
        )
        parser.add_argument(
            "--as",
            dest="username",
            help=_("The user the import is made as (default: the only superuser)."),
        )

    def handle(self, *args, file, mapping, on_duplicate, dry_run, username, **options):
        path = os.path.abspath(file)
        if not os.path.isfile(path):
            raise CommandError(_("No file at %(path)s.") % {"path": path})
        user = self._user(username)
        if not user.has_perm("customers.import_customers"):
            raise CommandError(
                _("%(user)s may not import customers.") % {"user": user.get_username()}
            )
        try:
            info = inspect(path, path)
        except ImportFileError as error:
            raise CommandError(str(error)) from None
        custom_fields = list(CustomField.objects.filter(active=True))
        saved = None
        if mapping:
            saved = ImportMapping.objects.filter(name=mapping).first()
            if saved is None:
                raise CommandError(_("No saved mapping is named “%(name)s”.") % {"name": mapping})
        columns = suggest(info.headers, custom_fields, saved.columns if saved else None)
        if not columns:
            raise CommandError(_("None of the file's columns was recognised."))
        for number, target in sorted(columns.items()):
            self.stdout.write(f"  {info.headers[number]} → {field_label(target, custom_fields)}")
        job = CustomerImport.objects.create(
            user=user,
            file_name=os.path.basename(path)[:255],
            file_size=os.path.getsize(path),
            file_format=info.format,
            encoding=info.encoding,
            delimiter=info.delimiter,
            headers=info.headers,
            mapping={str(number): target for number, target in columns.items()},
            on_duplicate=on_duplicate,
            dry_run=dry_run,
            state=CustomerImport.State.RUNNING,
        )
        outcome = imports.execute(job, dry_run=dry_run, path=path)
        if outcome is None:
            job.refresh_from_db()
            raise CommandError(job.error or _("The import did not run."))
        report = f"{path}.errors.csv"
        if outcome.problems:
            with job.report.open("rb") as source, open(report, "wb") as target:
                shutil.copyfileobj(source, target)
        elif os.path.exists(report):
            os.remove(report)
        if dry_run:
            # A check leaves nothing behind: neither customers nor a record of the import.
            if job.report:
                job.report.storage.delete(job.report.name)
            job.delete()
        self.stdout.write(self._summary(outcome, dry_run))
        if outcome.problems:
            self.stdout.write(_("Problems are listed in %(path)s.") % {"path": report})
        if outcome.failed:
            raise SystemExit(1)

    def _user(self, username):
        users = get_user_model().objects.filter(is_active=True)
        if username:
            user = users.filter(username=username).first()
            if user is None:
                raise CommandError(_("No active user is named %(name)s.") % {"name": username})
            return user
        superusers = list(users.filter(is_superuser=True)[:2])
        if len(superusers) != 1:
            raise CommandError(_("Name the user to import as with --as USERNAME."))
        return superusers[0]

    def _summary(self, outcome, dry_run):
        values = {
            name: f"{getattr(outcome, name):,}"
            for name in ("total", "created", "updated", "skipped", "failed")
        }
        if dry_run:
            return (
                _(
                    "Checked %(total)s rows (nothing was changed): %(created)s would be created, "
                    "%(updated)s updated, %(skipped)s skipped, %(failed)s failed."
                )
                % values
            )
        return (
            _(
                "Imported %(total)s rows: %(created)s created, %(updated)s updated, "
                "%(skipped)s skipped, %(failed)s failed."
            )
            % values
        )
