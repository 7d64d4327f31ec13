"""The administrators' backups page, and backups made by a real Celery worker."""

import datetime
import time

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts import audit
from accounts.models import Backup
from accounts.tasks import scheduled_backup


def wait_for(condition, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := condition():
            return result
        time.sleep(0.2)
    raise AssertionError("timed out")


def finished_backups():
    return [backup for backup in Backup.objects.all() if backup.finished]


@pytest.mark.django_db
def test_page_lists_backups_and_warns_of_a_failed_one(admin_client, backup_settings, english):
    Backup.objects.create(
        trigger=Backup.Trigger.SCHEDULE,
        status=Backup.Status.FAILED,
        error="pg_dump failed: connection refused",
    )
    response = admin_client.get(reverse("manage:backups"))
    assert response.status_code == 200
    page = response.content.decode()
    assert "The latest backup failed: pg_dump failed: connection refused" in page
    assert 'role="alert"' in page
    assert "Nightly schedule" in page


@pytest.mark.django_db
def test_page_warns_when_no_backup_succeeded_recently(admin_client, backup_settings, english):
    response = admin_client.get(reverse("manage:backups"))
    assert "No backup has succeeded in the last 26 hours." in response.content.decode()


@pytest.mark.django_db
def test_page_says_when_the_public_key_is_missing(admin_client, backup_settings, english):
    backup_settings.BACKUP_PUBLIC_KEY_FILE = str(backup_settings.BACKUP_DIR / "none.pem")
    response = admin_client.get(reverse("manage:backups"))
    assert "No backup public key can be read" in response.content.decode()


@pytest.mark.django_db
def test_staff_and_auditors_cannot_see_or_start_backups(client, staff, auditor):
    for user in (staff, auditor):
        client.force_login(user)
        assert client.get(reverse("manage:backups")).status_code == 403
        assert client.post(reverse("manage:backup_start")).status_code == 403
    assert not Backup.objects.exists()


@pytest.mark.django_db
def test_starting_a_backup_needs_post(admin_client):
    assert admin_client.get(reverse("manage:backup_start")).status_code == 405
    assert not Backup.objects.exists()


@pytest.mark.django_db
def test_a_second_request_while_one_runs_starts_nothing(
    admin_client, backup_settings, english, django_capture_on_commit_callbacks
):
    Backup.objects.create(trigger=Backup.Trigger.SCHEDULE, status=Backup.Status.RUNNING)
    with django_capture_on_commit_callbacks() as callbacks:
        response = admin_client.post(reverse("manage:backup_start"), follow=True)
    assert "A backup is already under way." in response.content.decode()
    assert callbacks == []
    assert Backup.objects.count() == 1


def test_backup_asked_for_on_the_page_is_made_by_the_worker(
    celery_worker, admin_client, admin_user, backup_settings, english
):
    response = admin_client.post(reverse("manage:backup_start"), follow=True)
    assert "Backup started." in response.content.decode()
    backup = wait_for(lambda: finished_backups() and finished_backups()[0])
    assert backup.status == Backup.Status.SUCCEEDED, backup.error
    assert backup.trigger == Backup.Trigger.REQUEST and backup.requested_by == admin_user
    assert (backup_settings.BACKUP_DIR / backup.name).stat().st_size == backup.size
    actions = list(audit.AuditEntry.objects.order_by("seq").values_list("action", "actor_id"))
    assert (audit.Action.BACKUP_REQUEST, admin_user.pk) in actions
    assert (audit.Action.BACKUP_CREATE, admin_user.pk) in actions
    detail = admin_client.get(reverse("manage:backup_detail", args=[backup.pk]))
    assert "public.customers_customer" in detail.content.decode()


def test_nightly_task_on_a_worker_records_success(celery_worker, backup_settings):
    scheduled_backup.delay()
    backup = wait_for(lambda: finished_backups() and finished_backups()[0])
    assert backup.status == Backup.Status.SUCCEEDED, backup.error
    assert backup.trigger == Backup.Trigger.SCHEDULE
    assert backup.manifest["database"]["tables"]
    assert audit.AuditEntry.objects.filter(
        action=audit.Action.BACKUP_CREATE, object_id=str(backup.pk)
    ).exists()


def test_nightly_task_on_a_worker_records_failure_for_administrators(
    celery_worker, backup_settings, admin_client, english
):
    backup_settings.BACKUP_PUBLIC_KEY_FILE = str(backup_settings.BACKUP_DIR / "gone.pem")
    scheduled_backup.delay()
    backup = wait_for(lambda: finished_backups() and finished_backups()[0])
    assert backup.status == Backup.Status.FAILED
    assert "gone.pem" in backup.error
    entry = audit.AuditEntry.objects.get(action=audit.Action.BACKUP_FAILED)
    assert entry.object_id == str(backup.pk) and "gone.pem" in entry.data["error"]
    page = admin_client.get(reverse("manage:backups")).content.decode()
    assert 'role="alert"' in page and "Failed" in page and "gone.pem" in page


@pytest.mark.django_db
def test_a_backup_whose_worker_died_is_failed_and_no_longer_blocks_a_new_one(
    admin_client, backup_settings, english, django_capture_on_commit_callbacks
):
    stalled = Backup.objects.create(trigger=Backup.Trigger.SCHEDULE, status=Backup.Status.RUNNING)
    Backup.objects.filter(pk=stalled.pk).update(
        created_at=timezone.now() - datetime.timedelta(hours=13)
    )
    with django_capture_on_commit_callbacks() as callbacks:
        response = admin_client.post(reverse("manage:backup_start"), follow=True)
    assert "Backup started." in response.content.decode()
    assert len(callbacks) == 1
    stalled.refresh_from_db()
    assert stalled.status == Backup.Status.FAILED
    assert stalled.error == "Interrupted: the worker stopped before the backup finished."
