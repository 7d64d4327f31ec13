import logging

from celery import shared_task
from django.db import DatabaseError

from accounts import audit, backups
from accounts.models import Backup

logger = logging.getLogger(__name__)


@shared_task(bind=True, max_retries=5)
def write_audit_checkpoint(self):
    """Sign the audit trail's head into a checkpoint outside the database (Celery beat).

    Idempotent: a head already signed is left alone. A broken chain is logged as an error and
    not signed; `manage.py verify_audit` says what is wrong.
    """
    try:
        audit.write_checkpoint()
    except DatabaseError as error:
        raise self.retry(exc=error, countdown=2**self.request.retries) from error
    except audit.ChainBroken as broken:
        logger.error("Audit trail broken at entry %s: %s", broken.seq, broken.message)
        raise


@shared_task(bind=True, max_retries=5, acks_late=True)
def run_backup(self, backup_id):
    """Make a backup an administrator asked for (queued on commit by the backups page).

    Idempotent: a backup that already finished is left alone; one whose worker died is made
    again from the start.
    """
    backup = Backup.objects.filter(pk=backup_id).first()
    if backup is None or backup.finished:
        return
    try:
        backups.run_backup(backup)
    except DatabaseError as error:
        raise self.retry(exc=error, countdown=2**self.request.retries) from error
    except backups.BackupError:
        # Recorded on the row and in the audit trail; the page shows it to administrators.
        return


@shared_task(bind=True, max_retries=3, acks_late=True)
def scheduled_backup(self):
    """The nightly backup (Celery beat), then the retention. A failure is on the row, in the
    audit trail and on the backups page; it is raised so the worker's log shows it too."""
    backups.fail_interrupted()
    backup = backups.create_backup(trigger=Backup.Trigger.SCHEDULE)
    backups.run_backup(backup)
    backups.prune()
    return str(backup.pk)
