"""Files made in the background: building, progress, failures, retries, retention."""

import datetime
import io

import openpyxl
import pytest
from django.utils import timezone

from accounts.audit import Action, AuditEntry
from reports.models import GeneratedFile

pytestmark = pytest.mark.django_db


def spec_of(rows=2, **extra):
    return {
        "kind": "test",
        "title": "测试",
        "columns": [["名称", "text"], ["数量", "integer"], ["金额", "money"]],
        "rows": [[f"客户{n}", n, "12.50"] for n in range(rows)],
        **extra,
    }


def make_file(owner, fmt="xlsx", **spec):
    return GeneratedFile.objects.create(
        owner=owner, title="测试文件", format=fmt, spec=spec_of(**spec)
    )


def test_build_writes_the_file_and_records_the_export(staff):
    generated = make_file(staff)
    generated.build()
    generated.refresh_from_db()
    assert generated.status == GeneratedFile.Status.DONE
    assert generated.progress == 100
    assert generated.rows == 2
    assert generated.size == generated.file.size > 0
    assert generated.started_at <= generated.finished_at
    assert generated.download_name.endswith(".xlsx")
    with generated.file.open("rb") as stored:
        sheet = openpyxl.load_workbook(io.BytesIO(stored.read())).worksheets[0]
    assert [c.value for c in sheet[3]] == ["客户1", 1, 12.5]
    entry = AuditEntry.objects.get(action=Action.EXPORT)
    assert entry.actor_id == staff.pk
    assert entry.object_id == str(generated.pk)
    assert entry.data["rows"] == 2 and entry.data["format"] == "xlsx"


def test_progress_is_recorded_while_rows_are_written(staff, monkeypatch):
    from reports import exports

    seen = []
    monkeypatch.setattr(exports, "PROGRESS_EVERY", 500)
    original = GeneratedFile._progress_recorder

    def recorder(self, table):
        record = original(self, table)

        def spy(done):
            record(done)
            seen.append(GeneratedFile.objects.get(pk=self.pk).progress)

        return spy

    monkeypatch.setattr(GeneratedFile, "_progress_recorder", recorder)
    make_file(staff, fmt="csv", rows=2000).build()
    assert seen and seen[0] == 23  # 500 of 2,000 rows, of the 95 % the rows take
    assert seen == sorted(seen)


def test_a_failed_build_keeps_a_reason_and_can_be_retried(
    staff, django_capture_on_commit_callbacks
):
    generated = make_file(staff, fail="boom")
    with pytest.raises(RuntimeError):
        generated.build()
    generated.refresh_from_db()
    assert generated.status == GeneratedFile.Status.FAILED
    assert "RuntimeError" in generated.error
    assert not generated.file
    assert not AuditEntry.objects.filter(action=Action.EXPORT).exists()
    generated.spec = spec_of()
    generated.save()
    with django_capture_on_commit_callbacks() as callbacks:
        assert generated.retry()
    assert len(callbacks) == 1  # the task is queued once the retry is committed
    generated.refresh_from_db()
    assert generated.status == GeneratedFile.Status.QUEUED and generated.error == ""
    generated.build()
    assert GeneratedFile.objects.get(pk=generated.pk).status == GeneratedFile.Status.DONE


def test_only_failed_files_are_retried(staff):
    generated = make_file(staff)
    generated.build()
    assert not generated.retry()


def test_a_finished_file_is_not_built_again(staff):
    generated = make_file(staff)
    generated.build()
    name = GeneratedFile.objects.get(pk=generated.pk).file.name
    generated.build()
    assert GeneratedFile.objects.get(pk=generated.pk).file.name == name
    assert AuditEntry.objects.filter(action=Action.EXPORT).count() == 1


def test_only_the_owner_sees_a_file(staff, staff2, manager, admin_user, outsider):
    generated = make_file(staff)
    assert list(GeneratedFile.objects.visible_to(staff)) == [generated]
    for other in (staff2, manager, admin_user, outsider):
        assert not GeneratedFile.objects.visible_to(other).exists()


def test_files_expire_after_the_retention_period(staff, settings):
    settings.GENERATED_FILE_RETENTION_DAYS = 3
    generated = make_file(staff)
    assert generated.expires_at - generated.created_at == datetime.timedelta(days=3)


def test_deleting_expired_files_removes_their_stored_files(
    staff, django_capture_on_commit_callbacks
):
    from reports.tasks import delete_expired_generated_files

    old, current = make_file(staff), make_file(staff)
    old.build()
    current.build()
    old_file = GeneratedFile.objects.get(pk=old.pk).file
    storage, name = old_file.storage, old_file.name
    assert storage.exists(name)
    GeneratedFile.objects.filter(pk=old.pk).update(
        expires_at=timezone.now() - datetime.timedelta(minutes=1)
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert delete_expired_generated_files() == 1
    assert not storage.exists(name)
    assert list(GeneratedFile.objects.all()) == [current]


# Pages ------------------------------------------------------------------------------------

LIST_URL = "/reports/files/"


@pytest.fixture
def done_file(staff):
    generated = make_file(staff)
    generated.build()
    return GeneratedFile.objects.get(pk=generated.pk)


def test_url_names(done_file):
    from django.urls import reverse

    assert reverse("files:list") == LIST_URL
    assert (
        reverse("files:download", args=[done_file.pk]) == f"/reports/files/{done_file.pk}/download/"
    )


def test_the_list_shows_only_the_users_own_files(staff_client, done_file, staff2):
    make_file(staff2).build()
    response = staff_client.get(LIST_URL)
    assert response.status_code == 200
    assert list(response.context["files"]) == [done_file]
    assert done_file.get_download_url() in response.content.decode()


def test_the_list_polls_while_a_file_is_being_made(staff_client, staff):
    make_file(staff)
    response = staff_client.get(LIST_URL)
    assert 'hx-trigger="every 2s"' in response.content.decode()
    assert response.context["pending"]
    # The poll gets only the table, not the whole page.
    partial = staff_client.get(LIST_URL, headers={"HX-Request": "true"}).content.decode()
    assert partial.lstrip().startswith('<div id="files"') and "<html" not in partial


def test_the_owner_downloads_the_file_and_it_is_audited(staff_client, done_file):
    response = staff_client.get(done_file.get_download_url())
    assert response.status_code == 200
    content = b"".join(response.streaming_content)
    assert content[:2] == b"PK"
    assert "attachment" in response["Content-Disposition"]
    entry = AuditEntry.objects.get(action=Action.REPORT_DOWNLOAD)
    assert entry.object_id == str(done_file.pk) and entry.data["rows"] == 2


@pytest.mark.parametrize("name", ["detail", "download", "retry", "delete"])
def test_anyone_but_the_owner_gets_a_404(client, done_file, staff2, name):
    from django.urls import reverse

    client.force_login(staff2)
    url = reverse(f"files:{name}", args=[done_file.pk])
    response = client.post(url) if name in ("retry", "delete") else client.get(url)
    assert response.status_code == 404
    assert GeneratedFile.objects.filter(pk=done_file.pk).exists()
    assert not AuditEntry.objects.filter(action=Action.REPORT_DOWNLOAD).exists()


def test_a_file_not_ready_cannot_be_downloaded(staff_client, staff):
    generated = make_file(staff)
    assert staff_client.get(generated.get_download_url()).status_code == 404


def test_the_detail_page_shows_progress_and_the_failure_reason(staff_client, staff):
    generated = make_file(staff, fail="boom")
    response = staff_client.get(generated.get_absolute_url())
    assert 'hx-trigger="every 1s"' in response.content.decode()
    with pytest.raises(RuntimeError):
        generated.build()
    response = staff_client.get(generated.get_absolute_url(), headers={"HX-Request": "true"})
    page = response.content.decode()
    assert "hx-trigger" not in page  # finished: no more polling
    assert "RuntimeError" in page and "/retry/" in page


def test_the_retry_button_queues_a_failed_file_again(
    staff_client, staff, django_capture_on_commit_callbacks
):
    generated = make_file(staff, fail="boom")
    with pytest.raises(RuntimeError):
        generated.build()
    retry_url = f"/reports/files/{generated.pk}/retry/"
    assert staff_client.get(retry_url).status_code == 405
    with django_capture_on_commit_callbacks() as callbacks:
        response = staff_client.post(retry_url)
    assert response["Location"] == generated.get_absolute_url()
    assert len(callbacks) == 1
    assert GeneratedFile.objects.get(pk=generated.pk).status == GeneratedFile.Status.QUEUED


def test_deleting_a_file_removes_it_from_storage(
    staff_client, done_file, django_capture_on_commit_callbacks
):
    storage, name = done_file.file.storage, done_file.file.name
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(f"/reports/files/{done_file.pk}/delete/")
    assert response["Location"] == LIST_URL
    assert not GeneratedFile.objects.exists()
    assert not storage.exists(name)


# The task ---------------------------------------------------------------------------------


def test_the_task_retries_a_transient_error(staff, monkeypatch):
    from django.db import OperationalError

    from reports.tasks import build_generated_file

    generated = make_file(staff)
    original, calls = GeneratedFile.build, []

    def flaky(self, **kwargs):
        calls.append(kwargs)
        if len(calls) == 1:
            # As a lost connection in the middle of the build would.
            raise OperationalError("server closed the connection unexpectedly")
        return original(self, **kwargs)

    monkeypatch.setattr(GeneratedFile, "build", flaky)
    build_generated_file.apply(args=[str(generated.pk)])
    assert calls == [{"retry_transient": True}, {"retry_transient": True}]
    assert GeneratedFile.objects.get(pk=generated.pk).status == GeneratedFile.Status.DONE


def test_a_transient_error_puts_the_file_back_in_the_queue(staff, monkeypatch, english):
    from django.db import OperationalError

    from reports import exports

    generated = make_file(staff)

    def broken(spec, user):
        raise OperationalError("deadlock detected")

    monkeypatch.setattr(exports, "build_table", broken)
    with pytest.raises(OperationalError):
        generated.build(retry_transient=True)
    generated.refresh_from_db()
    assert generated.status == GeneratedFile.Status.QUEUED
    assert "temporary error" in generated.error
    with pytest.raises(OperationalError):
        generated.build()
    assert GeneratedFile.objects.get(pk=generated.pk).status == GeneratedFile.Status.FAILED


def test_a_real_worker_builds_a_queued_export_with_progress(celery_worker, staff):
    import time

    from django.db import transaction

    with transaction.atomic():
        generated = GeneratedFile.queue(
            owner=staff, title="大文件", format="pdf", spec=spec_of(rows=1, repeat=600)
        )
    # Progress as the page polls it: the steps seen on the way, then done.
    seen, deadline = set(), time.monotonic() + 60
    while time.monotonic() < deadline:
        current = GeneratedFile.objects.get(pk=generated.pk)
        seen.add((current.status, current.progress))
        if current.finished:
            break
        time.sleep(0.05)
    assert current.status == GeneratedFile.Status.DONE, current.error
    assert current.rows == 600 and current.progress == 100
    assert any(status == "running" and 0 < progress < 100 for status, progress in seen), seen
    assert AuditEntry.objects.filter(action=Action.EXPORT, object_id=str(generated.pk)).exists()


def test_deleting_a_user_deletes_their_files(staff, done_file, django_capture_on_commit_callbacks):
    storage, name = done_file.file.storage, done_file.file.name
    with django_capture_on_commit_callbacks(execute=True):
        staff.delete()
    assert not GeneratedFile.objects.exists()
    assert not storage.exists(name)
