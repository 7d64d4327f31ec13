"""`python manage.py backup [--verify] [--prune]`: make an encrypted backup now."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from accounts import backups
from accounts.models import Backup


class Command(BaseCommand):
    help = (
        "Make an encrypted backup of the database and stored files (MEDIA_ROOT) and store it in "
        "BACKUP_DIR or the S3 bucket BACKUP_S3_BUCKET. --verify then restores it into a scratch "
        "database and compares every table (a restore drill); --prune applies the retention."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--verify",
            action="store_true",
            help="Restore the new backup into a scratch database, compare it, and drop it.",
        )
        parser.add_argument(
            "--private-key",
            help="Private key (PEM) for --verify; default BACKUP_PRIVATE_KEY_FILE.",
        )
        parser.add_argument(
            "--prune",
            action="store_true",
            help="Afterwards delete the backups that the retention settings do not keep.",
        )

    def handle(self, *args, verify, private_key, prune, **options):
        key_path = private_key or settings.BACKUP_PRIVATE_KEY_FILE
        if verify and not key_path:
            raise CommandError(_("--verify needs --private-key or BACKUP_PRIVATE_KEY_FILE."))
        try:
            key = backups.private_key(key_path) if verify else None
            backup = backups.run_backup(backups.create_backup(trigger=Backup.Trigger.COMMAND))
        except backups.BackupError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(
            _("Backup %(name)s (%(size)s bytes) stored in %(destination)s.")
            % {"name": backup.name, "size": backup.size, "destination": backup.destination}
        )
        if verify:
            try:
                restored = backups.drill(backup, key)
            except backups.BackupError as error:
                message = _("Restore drill failed: %(error)s") % {"error": error}
                raise CommandError(message) from None
            self.stdout.write(
                _(
                    "Restore drill passed: %(tables)s tables, %(rows)s rows and %(entries)s "
                    "audit entries match the manifest."
                )
                % {
                    "tables": restored.tables,
                    "rows": restored.rows,
                    "entries": restored.audit_entries,
                }
            )
        if prune:
            for name in backups.prune():
                self.stdout.write(_("Deleted %(name)s.") % {"name": name})
