"""`python manage.py restore BACKUP --private-key FILE [--database NAME] [--verify-only]`."""

import tempfile
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from accounts import backups


class Command(BaseCommand):
    help = (
        "Restore an encrypted backup (a file, or a name in the backup destination) into an "
        "empty or new database. The whole backup is checked with the private key before "
        "anything is written; a damaged, truncated, reordered or foreign backup is refused."
    )
    # The target database may not exist yet: nothing may connect to it before the restore.
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("backup", help="Backup file, or its name in the destination.")
        parser.add_argument(
            "--private-key", required=True, help="The backup private key (PEM file)."
        )
        parser.add_argument(
            "--passphrase-file", help="A file holding the private key's passphrase."
        )
        parser.add_argument(
            "--database",
            help="Database to restore into (created when missing; must be empty). "
            "Default: the configured database.",
        )
        parser.add_argument(
            "--verify-only",
            action="store_true",
            help="Check the backup completely and write nothing.",
        )
        parser.add_argument(
            "--no-files", action="store_true", help="Do not restore the stored files."
        )
        parser.add_argument(
            "--media-root", help="Where to restore stored files (default MEDIA_ROOT)."
        )

    def handle(self, *args, backup, private_key, passphrase_file, database, verify_only,
               no_files, media_root, **options):  # fmt: skip
        password = Path(passphrase_file).read_bytes().strip() if passphrase_file else None
        settings.BACKUP_DIR.mkdir(parents=True, exist_ok=True)
        try:
            key = backups.private_key(private_key, password)
            with tempfile.TemporaryDirectory(dir=settings.BACKUP_DIR) as directory:
                path = backups.fetch(backup, directory)
                if verify_only:
                    checked = backups.check_backup(path, key)
                    self._report_checked(checked)
                    return
                restored = backups.restore_backup(
                    path,
                    key,
                    database=database,
                    media_root=media_root,
                    restore_files=not no_files,
                )
        except backups.BackupError as error:
            raise CommandError(_("Restore refused: %(error)s") % {"error": error}) from None
        self.stdout.write(
            _(
                "Restored into %(database)s: %(tables)s tables and %(rows)s rows match the "
                "manifest, the audit trail of %(entries)s entries verifies, %(files)s files "
                "written."
            )
            % {
                "database": restored.database,
                "tables": restored.tables,
                "rows": restored.rows,
                "entries": restored.audit_entries,
                "files": restored.files,
            }
        )

    def _report_checked(self, checked):
        manifest = checked.manifest
        self.stdout.write(
            _(
                "Backup %(id)s of %(time)s is intact: every chunk authenticates and the "
                "database dump (%(size)s bytes, %(tables)s tables) and %(files)s files match "
                "the manifest."
            )
            % {
                "id": manifest["backup_id"],
                "time": manifest["created_at"],
                "size": manifest["database"]["size"],
                "tables": len(manifest["database"]["tables"]),
                "files": len(manifest["files"]),
            }
        )
