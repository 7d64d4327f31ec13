"""Scheduled reports delivered: each recipient's own rows, once, through a real Celery worker
and a real SMTP server, also after the mail server failed or the worker was killed."""

import datetime
import email
import email.policy
import io
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import openpyxl
import psycopg
import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

import reports.schedule_tasks  # noqa: F401 - registers the tasks with the worker
from accounts.audit import Action, AuditEntry
from customers.models import Customer
from reports import scheduling
from reports.models import Delivery, GeneratedFile, SavedReport, Schedule, ScheduleRun

BY_PROVINCE = {
    "source": "customers",
    "group_by": ["province"],
    "aggregates": [{"func": "count"}],
    "sort": {"key": "count", "desc": True},
}
BASE_DIR = Path(__file__).resolve().parents[2]


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Inbox:
    """Messages an aiosmtpd server received, parsed; refuses the addresses in `refuse`."""

    def __init__(self):
        self.messages, self.refuse = [], set()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return "550 Mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append((envelope.rcpt_tos, message))
        return "250 Message accepted"

    def to(self, address):
        return [message for rcpt, message in self.messages if address in rcpt]


@pytest.fixture
def smtp_inbox(settings):
    """A real SMTP server on a local port, with Django's SMTP backend pointed at it."""
    from aiosmtpd.controller import Controller

    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    inbox.port = port
    settings.MAILERS = {
        "default": {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": {"host": "127.0.0.1", "port": port, "timeout": 5},
        }
    }
    settings.SITE_URL = "http://cims.example.com"
    yield inbox
    controller.stop()


@pytest.fixture
def world(manager, staff2, teams):
    """Three customers of the manager's team in 广东省 and 上海市, one of staff2's in 广东省; the
    report is shared with staff2, who sees only their own customers."""
    for user in (manager, staff2):
        user.email = f"{user.username}@example.com"
        user.save(update_fields=["email"])
    for name, province, owner, team in [
        ("甲", "广东省", None, teams[0]),
        ("乙", "广东省", None, teams[0]),
        ("丙", "上海市", None, teams[0]),
        ("丁", "广东省", staff2, teams[1]),
    ]:
        Customer.objects.create(display_name=name, province=province, owner=owner, team=team)
    report = SavedReport.objects.create(
        name="Customers by province", definition=BY_PROVINCE, owner=manager
    )
    report.shared_with_users.add(staff2)
    return report


def due_schedule(report, owner, recipients, *, formats="both"):
    schedule = Schedule.objects.create(
        report=report,
        owner=owner,
        formats=formats,
        frequency=Schedule.Frequency.DAILY,
        time=datetime.time(8, 0),
        next_run_at=timezone.now() - datetime.timedelta(seconds=30),
    )
    schedule.recipients.set(recipients)
    return schedule


def wait_for(condition, timeout=60, message="timed out"):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, message
        time.sleep(0.1)


def sheet_rows(message):
    (xlsx,) = [
        part.get_content()
        for part in message.iter_attachments()
        if part.get_filename().endswith(".xlsx")
    ]
    sheet = openpyxl.load_workbook(io.BytesIO(xlsx)).worksheets[0]
    return [row for row in sheet.iter_rows(values_only=True)]


def run_finished(run):
    return lambda: ScheduleRun.objects.get(pk=run.pk).finished


# Through the real worker -----------------------------------------------------------------------


def test_each_recipient_gets_one_email_with_their_rows_and_the_next_period_fires_again(
    celery_worker, smtp_inbox, world, manager, staff2
):
    schedule = due_schedule(world, manager, [manager, staff2])
    # Beat firing twice in the same minute.
    reports.schedule_tasks.dispatch_scheduled_reports.delay()
    reports.schedule_tasks.dispatch_scheduled_reports.delay()
    wait_for(lambda: ScheduleRun.objects.filter(state="done").exists(), message="no run finished")
    time.sleep(1)  # a second run or email would have come by now
    assert ScheduleRun.objects.count() == 1
    assert len(smtp_inbox.messages) == 2

    (to_manager,) = smtp_inbox.to("manager@example.com")
    (to_staff2,) = smtp_inbox.to("staff2@example.com")
    assert "Customers by province" in to_manager["Subject"]
    assert sorted(p.get_filename()[-4:] for p in to_manager.iter_attachments()) == [
        ".pdf",
        "xlsx",
    ]
    # The report runs with each recipient's permissions.
    assert ("广东省", 2) in sheet_rows(to_manager) and ("上海市", 1) in sheet_rows(to_manager)
    assert ("广东省", 1) in sheet_rows(to_staff2)
    assert not any(row[0] == "上海市" for row in sheet_rows(to_staff2))

    files = GeneratedFile.objects.all()
    assert sorted((f.owner.username, f.format, f.status) for f in files) == [
        ("manager", "pdf", "done"),
        ("manager", "xlsx", "done"),
        ("staff2", "pdf", "done"),
        ("staff2", "xlsx", "done"),
    ]
    for generated in files:
        assert generated.spec == {"kind": "report", "report": str(world.pk)}
        kept = generated.expires_at - generated.created_at
        assert abs(kept - datetime.timedelta(days=settings.SCHEDULED_REPORT_RETENTION_DAYS)) < (
            datetime.timedelta(minutes=1)
        )

    # The next period comes.
    Schedule.objects.filter(pk=schedule.pk).update(
        next_run_at=timezone.now() - datetime.timedelta(seconds=1)
    )
    reports.schedule_tasks.dispatch_scheduled_reports.delay()
    wait_for(lambda: ScheduleRun.objects.filter(state="done").count() == 2)
    assert len(smtp_inbox.to("manager@example.com")) == 2
    assert len(smtp_inbox.to("staff2@example.com")) == 2


def test_a_mail_server_refusing_to_the_end_fails_the_run_after_its_retries(
    celery_worker, smtp_inbox, world, manager, settings, english
):
    settings.SCHEDULED_REPORT_RETRIES = 2
    settings.SCHEDULED_REPORT_RETRY_SECONDS = 0
    smtp_inbox.refuse.add("manager@example.com")
    schedule = due_schedule(world, manager, [manager], formats="pdf")
    reports.schedule_tasks.dispatch_scheduled_reports.delay()
    wait_for(lambda: ScheduleRun.objects.filter(state="failed").exists(), message="not failed")
    run = ScheduleRun.objects.get()
    # The first try and two retries; the file was made once.
    assert run.attempts == 3 and run.interruptions == 0
    delivery = run.deliveries.get()
    assert delivery.state == "failed" and delivery.attempts == 3
    assert GeneratedFile.objects.count() == 1
    assert "The email could not be sent" in run.error
    entry = AuditEntry.objects.get(action=Action.SCHEDULE_FAILED)
    assert entry.object_id == str(schedule.pk) and entry.data["failed"] == ["manager"]
    assert smtp_inbox.messages == []


# In the test process (the worker's function, called directly) ----------------------------------


def dispatch_one():
    (run,) = scheduling.dispatch_due_schedules()
    return run


@pytest.mark.django_db
def test_large_files_are_sent_as_links(smtp_inbox, world, manager, settings, english):
    settings.SCHEDULED_REPORT_ATTACHMENT_MAX_BYTES = 100
    due_schedule(world, manager, [manager], formats="xlsx")
    run = dispatch_one()
    scheduling.execute_run(run.pk)
    ((rcpt, message),) = smtp_inbox.messages
    assert list(message.iter_attachments()) == []
    body = message.get_body(preferencelist=("plain",)).get_content()
    generated = GeneratedFile.objects.get()
    assert f"http://cims.example.com{generated.get_download_url()}" in body
    assert not Delivery.objects.get().attached


@pytest.mark.django_db
def test_a_saved_analysis_is_delivered_with_each_recipients_rows(
    smtp_inbox, world, manager, staff2
):
    analysis = SavedReport.objects.create(
        name="Customers by province (pivot)",
        kind=SavedReport.Kind.ANALYSIS,
        definition={"params": {"rows": ["province"], "measure": ["customers"]}},
        owner=manager,
    )
    analysis.shared_with_users.add(staff2)
    due_schedule(analysis, manager, [manager, staff2], formats="xlsx")
    scheduling.execute_run(dispatch_one().pk)
    (to_manager,) = smtp_inbox.to("manager@example.com")
    (to_staff2,) = smtp_inbox.to("staff2@example.com")
    assert ("广东省", 2) in sheet_rows(to_manager) and ("上海市", 1) in sheet_rows(to_manager)
    assert ("广东省", 1) in sheet_rows(to_staff2)
    assert not any(row[0] == "上海市" for row in sheet_rows(to_staff2))


@pytest.mark.django_db
def test_a_refused_recipient_is_retried_without_resending_to_the_others(
    smtp_inbox, world, manager, staff2, english
):
    due_schedule(world, manager, [manager, staff2])
    run = dispatch_one()
    smtp_inbox.refuse.add("staff2@example.com")
    with pytest.raises(scheduling.DeliveryDeferred):
        scheduling.execute_run(run.pk)
    states = dict(Delivery.objects.values_list("recipient__username", "state"))
    assert states == {"manager": "sent", "staff2": "sending"}
    assert "The email could not be sent" in Delivery.objects.get(recipient=staff2).error
    # It waits for the task's retry; dispatch leaves it alone until then.
    assert ScheduleRun.objects.get(pk=run.pk).state == "queued"
    retry_at = timezone.now() + datetime.timedelta(minutes=2)
    scheduling.set_retry_time(run.pk, retry_at)
    assert scheduling.requeue_stalled_runs(now=retry_at - datetime.timedelta(seconds=1)) == []

    smtp_inbox.refuse.clear()
    scheduling.execute_run(run.pk)
    assert len(smtp_inbox.to("manager@example.com")) == 1
    assert len(smtp_inbox.to("staff2@example.com")) == 1
    # The files were not made again.
    assert GeneratedFile.objects.count() == 4
    assert ScheduleRun.objects.get(pk=run.pk).state == "done"


@pytest.mark.django_db
def test_a_send_interrupted_before_it_was_recorded_is_sent_again_as_the_same_message(
    smtp_inbox, world, manager
):
    due_schedule(world, manager, [manager], formats="pdf")
    run = dispatch_one()
    scheduling.execute_run(run.pk)
    # As if the worker died after the mail server accepted the message, before "sent".
    Delivery.objects.update(state=Delivery.State.SENDING)
    ScheduleRun.objects.filter(pk=run.pk).update(state="running")
    scheduling.execute_run(run.pk)
    first, second = smtp_inbox.to("manager@example.com")
    message_id = Delivery.objects.get().message_id
    assert str(first["Message-ID"]).strip() == str(second["Message-ID"]).strip() == message_id
    assert GeneratedFile.objects.count() == 1


@pytest.mark.django_db
def test_a_report_that_cannot_be_built_fails_the_run_visibly(smtp_inbox, world, manager):
    world.definition = {"source": "nowhere"}
    world.save()
    due_schedule(world, manager, [manager], formats="pdf")
    run = dispatch_one()
    scheduling.execute_run(run.pk)
    run.refresh_from_db()
    assert run.state == "failed" and run.error.startswith("manager: ")
    delivery = Delivery.objects.get()
    assert delivery.state == "failed" and delivery.error
    assert GeneratedFile.objects.get().status == "failed"
    assert smtp_inbox.messages == []
    entry = AuditEntry.objects.get(action=Action.SCHEDULE_FAILED)
    assert entry.data["failed"] == ["manager"]


@pytest.mark.django_db
def test_a_run_that_keeps_killing_its_worker_is_given_up(
    smtp_inbox, world, manager, settings, english
):
    due_schedule(world, manager, [manager], formats="pdf")
    run = dispatch_one()
    # Its worker was lost mid-job (the run says running, nobody holds its lock) once too often.
    ScheduleRun.objects.filter(pk=run.pk).update(
        state="running", interruptions=settings.SCHEDULED_REPORT_MAX_ATTEMPTS - 1
    )
    scheduling.execute_run(run.pk)
    run.refresh_from_db()
    assert run.state == "failed"
    assert run.error == f"Stopped after its worker was lost {run.interruptions} times."
    assert smtp_inbox.messages == []


@pytest.mark.django_db
def test_a_run_another_worker_is_running_is_left_to_it(smtp_inbox, world, manager):
    due_schedule(world, manager, [manager], formats="pdf")
    run = dispatch_one()
    keys = scheduling.run_lock_keys(run.pk)
    with psycopg.connect(**_psycopg_params()) as other:
        other.execute("SELECT pg_advisory_lock(%s, %s)", keys)
        assert _advisory_lock_held(keys)
        assert scheduling.execute_run(run.pk) is None
        assert (
            scheduling.requeue_stalled_runs(now=timezone.now() + datetime.timedelta(hours=1)) == []
        )
    assert smtp_inbox.messages == []
    # Once that worker is gone (its server process ends a moment after the connection), the run
    # is queued again.
    wait_for(lambda: not _advisory_lock_held(keys), timeout=10)
    assert scheduling.requeue_stalled_runs(now=timezone.now() + datetime.timedelta(hours=1)) == [
        run.pk
    ]


# A worker killed mid-job -----------------------------------------------------------------------


def _psycopg_params():
    db = connection.settings_dict
    return {
        "dbname": db["NAME"],
        "user": db["USER"],
        "password": db["PASSWORD"] or None,
        "host": db["HOST"] or None,
        "port": db["PORT"] or None,
        "autocommit": True,
    }


def _database_url():
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    host = db["HOST"] or "127.0.0.1"
    if host.startswith("/"):
        return f"postgres://{auth}@/{db['NAME']}?host={host}"
    return f"postgres://{auth}@{host}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def worker_process(transactional_db, smtp_inbox, settings):
    """start() a real `celery worker` process on a queue of its own; stopped after the test."""
    from cims.celery import app

    queue = f"cims-test-killed-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    previous = app.conf.task_default_queue
    app.conf.task_default_queue = queue
    app.__dict__.pop("amqp", None)
    environment = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(smtp_inbox.port),
        "SITE_URL": settings.SITE_URL,
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "DB_CONN_MAX_AGE": "0",
    }
    processes = []

    def start():
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "cims",
                "worker",
                "--pool=solo",
                f"--queues={queue}",
                "--include=reports.schedule_tasks",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "--loglevel=WARNING",
            ],
            cwd=BASE_DIR,
            env=environment,
        )
        processes.append(process)
        return process

    yield start
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    app.conf.task_default_queue = previous
    app.__dict__.pop("amqp", None)
    with app.connection_for_write() as broker:
        broker.default_channel.queue_purge(queue)


def test_a_worker_killed_while_building_still_delivers_exactly_once(
    worker_process, smtp_inbox, world, manager, staff2, settings
):
    settings.SCHEDULED_REPORT_STALLED_SECONDS = 0
    due_schedule(world, manager, [manager, staff2])
    with psycopg.connect(**_psycopg_params()) as blocker:
        # Hold the worker inside its first build: reading customers waits for this lock.
        blocker.autocommit = False
        blocker.execute("LOCK TABLE customers_customer IN ACCESS EXCLUSIVE MODE")
        worker = worker_process()
        run = dispatch_one()
        wait_for(
            lambda: GeneratedFile.objects.filter(status="running").exists(),
            message="the worker did not start building",
        )
        wait_for(
            lambda: _waiting_on_a_lock(blocker),
            message="the worker is not waiting for the customers table",
        )
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
        blocker.rollback()
    assert smtp_inbox.messages == []
    assert ScheduleRun.objects.get(pk=run.pk).state == "running"

    worker_process()
    # Dispatch (every minute from beat) queues the run again once the dead worker's lock is gone.
    deadline = time.monotonic() + 90
    while not ScheduleRun.objects.get(pk=run.pk).finished:
        assert time.monotonic() < deadline, "the run was not resumed"
        scheduling.requeue_stalled_runs()
        time.sleep(1)
    time.sleep(1)
    assert ScheduleRun.objects.get(pk=run.pk).state == "done"
    assert len(smtp_inbox.to("manager@example.com")) == 1
    assert len(smtp_inbox.to("staff2@example.com")) == 1
    assert len(smtp_inbox.messages) == 2
    # The file left "running" was made again, not a second one beside it.
    assert GeneratedFile.objects.count() == 4
    assert set(GeneratedFile.objects.values_list("status", flat=True)) == {"done"}
    resumed = ScheduleRun.objects.get(pk=run.pk)
    assert (resumed.attempts, resumed.interruptions) == (2, 1)


def _advisory_lock_held(keys):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = %s "
            "AND objid = %s AND granted",
            [keys[0], keys[1] & 0xFFFFFFFF],
        )
        return cursor.fetchone()[0] > 0


def _waiting_on_a_lock(blocker):
    with blocker.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
            "WHERE c.relname = 'customers_customer' AND NOT l.granted"
        )
        return cursor.fetchone()[0] > 0
