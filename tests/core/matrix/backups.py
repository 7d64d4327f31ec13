"""The backups page is for administrators alone, like the rest of the administration."""

from accounts.models import Backup
from tests.core.matrix import MANAGE, get, post

RULES = {
    "manage:backups": get(MANAGE),
    "manage:backup_start": post(MANAGE),
    "manage:backup_detail": get(MANAGE),
}


def make_objects(objects, users):
    backup = Backup.objects.create(
        trigger=Backup.Trigger.SCHEDULE, status=Backup.Status.FAILED, error="pg_dump failed"
    )
    return {"backup": backup}


def url_kwargs(name, objects):
    if name == "manage:backup_detail":
        return {"pk": objects["backup"].pk}
    return None
