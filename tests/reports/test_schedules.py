"""Report schedules: when they are due, firing once per period, and the schedule pages."""

import datetime
import threading
import zoneinfo

import pytest
from django.db import connection, transaction
from django.urls import reverse

from accounts import roles
from accounts.audit import Action, AuditEntry
from reports import scheduling
from reports.models import Delivery, SavedReport, Schedule, ScheduleRun
from tests.conftest import make_user

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
UTC = datetime.UTC
BY_PROVINCE = {
    "source": "customers",
    "group_by": ["province"],
    "aggregates": [{"func": "count"}],
    "sort": {"key": "count", "desc": True},
}


def at(*args, zone=SHANGHAI):
    return datetime.datetime(*args, tzinfo=zone)


def unsaved(frequency, hour=8, minute=0, *, weekday=None, day=None, zone="Asia/Shanghai"):
    return Schedule(
        frequency=frequency,
        weekday=weekday,
        day_of_month=day,
        time=datetime.time(hour, minute),
        time_zone=zone,
    )


# When a schedule is due ----------------------------------------------------------------------


def test_a_daily_schedule_is_due_today_until_its_time_then_tomorrow():
    schedule = unsaved("daily", 8, 30)
    assert scheduling.next_occurrence(schedule, at(2026, 3, 2, 8, 29)) == at(2026, 3, 2, 8, 30)
    # Exactly at the time, the period has started: the next is tomorrow's.
    assert scheduling.next_occurrence(schedule, at(2026, 3, 2, 8, 30)) == at(2026, 3, 3, 8, 30)
    # The answer is in UTC: 08:30 in Shanghai is 00:30 UTC.
    assert scheduling.next_occurrence(schedule, at(2026, 3, 2, 9, 0)).tzinfo == UTC
    assert scheduling.next_occurrence(schedule, at(2026, 3, 2, 9, 0)) == at(
        2026, 3, 3, 0, 30, zone=UTC
    )


def test_a_weekly_schedule_is_due_on_its_weekday():
    # 2026-03-02 is a Monday.
    friday = unsaved("weekly", 17, weekday=Schedule.Weekday.FRIDAY)
    assert scheduling.next_occurrence(friday, at(2026, 3, 2, 9)) == at(2026, 3, 6, 17)
    assert scheduling.next_occurrence(friday, at(2026, 3, 6, 17)) == at(2026, 3, 13, 17)
    monday = unsaved("weekly", 8, weekday=Schedule.Weekday.MONDAY)
    assert scheduling.next_occurrence(monday, at(2026, 3, 2, 7, 59)) == at(2026, 3, 2, 8)


def test_a_monthly_day_past_the_end_of_a_month_falls_on_its_last_day():
    schedule = unsaved("monthly", 6, day=31)
    assert scheduling.next_occurrence(schedule, at(2026, 1, 31, 7)) == at(2026, 2, 28, 6)
    assert scheduling.next_occurrence(schedule, at(2026, 2, 28, 6)) == at(2026, 3, 31, 6)
    assert scheduling.next_occurrence(schedule, at(2026, 4, 1)) == at(2026, 4, 30, 6)
    assert scheduling.next_occurrence(schedule, at(2028, 2, 1)) == at(2028, 2, 29, 6)
    fifteenth = unsaved("monthly", 6, day=15)
    assert scheduling.next_occurrence(fifteenth, at(2026, 12, 20)) == at(2027, 1, 15, 6)


def test_the_time_is_read_in_the_schedules_time_zone():
    new_york = zoneinfo.ZoneInfo("America/New_York")
    schedule = unsaved("daily", 9, zone="America/New_York")
    # 09:00 in New York is 14:00 UTC in winter and 13:00 UTC in summer.
    assert scheduling.next_occurrence(schedule, at(2026, 1, 10, 0, zone=UTC)) == at(
        2026, 1, 10, 14, zone=UTC
    )
    assert scheduling.next_occurrence(schedule, at(2026, 7, 10, 0, zone=UTC)) == at(
        2026, 7, 10, 13, zone=UTC
    )
    # The day clocks go forward (8 March 2026) has its 09:00 too.
    assert scheduling.next_occurrence(schedule, at(2026, 3, 8, 0, zone=new_york)) == at(
        2026, 3, 8, 9, zone=new_york
    )


# Firing once per period ----------------------------------------------------------------------


def give_emails(*users):
    for user in users:
        user.email = f"{user.username}@example.com"
        user.save(update_fields=["email"])


@pytest.fixture
def report(manager, staff, staff2):
    give_emails(manager, staff, staff2)
    return SavedReport.objects.create(
        name="Customers by province", definition=BY_PROVINCE, owner=manager
    )


@pytest.fixture
def make_schedule(report, manager):
    def make(*, now, frequency="daily", recipients=None, **fields):
        fields.setdefault("time", datetime.time(8, 0))
        schedule = Schedule(report=report, owner=manager, frequency=frequency, **fields)
        scheduling.plan(schedule, now=now)
        schedule.save()
        schedule.recipients.set(recipients or [manager])
        return schedule

    return make


@pytest.mark.django_db
def test_dispatching_twice_in_a_period_fires_once(make_schedule, manager, staff, report):
    report.shared_with_users.add(staff)
    schedule = make_schedule(now=at(2026, 3, 2, 7), recipients=[manager, staff])
    assert schedule.next_run_at == at(2026, 3, 2, 8)

    assert scheduling.dispatch_due_schedules(now=at(2026, 3, 2, 7, 59)) == []
    (run,) = scheduling.dispatch_due_schedules(now=at(2026, 3, 2, 8, 0, 20))
    assert scheduling.dispatch_due_schedules(now=at(2026, 3, 2, 8, 1)) == []

    assert run.period_start == at(2026, 3, 2, 8)
    assert ScheduleRun.objects.get() == run
    assert set(run.deliveries.values_list("recipient__username", "state")) == {
        ("manager", "pending"),
        ("staff", "pending"),
    }
    schedule.refresh_from_db()
    assert schedule.next_run_at == at(2026, 3, 3, 8)


@pytest.mark.django_db
def test_the_next_period_fires_again(make_schedule):
    make_schedule(now=at(2026, 3, 2, 7))
    scheduling.dispatch_due_schedules(now=at(2026, 3, 2, 8, 0, 5))
    scheduling.dispatch_due_schedules(now=at(2026, 3, 3, 8, 0, 5))
    scheduling.dispatch_due_schedules(now=at(2026, 3, 3, 8, 1))
    assert list(
        ScheduleRun.objects.order_by("period_start").values_list("period_start", flat=True)
    ) == [
        at(2026, 3, 2, 8),
        at(2026, 3, 3, 8),
    ]


@pytest.mark.django_db
def test_a_schedule_missed_for_days_fires_once_then_resumes_from_now(make_schedule):
    schedule = make_schedule(now=at(2026, 3, 2, 7))
    (run,) = scheduling.dispatch_due_schedules(now=at(2026, 3, 5, 12))
    assert run.period_start == at(2026, 3, 2, 8)
    schedule.refresh_from_db()
    assert schedule.next_run_at == at(2026, 3, 6, 8)
    assert scheduling.dispatch_due_schedules(now=at(2026, 3, 5, 12, 1)) == []


@pytest.mark.django_db
def test_a_paused_schedule_does_not_fire(make_schedule):
    schedule = make_schedule(now=at(2026, 3, 2, 7), paused=True)
    assert schedule.next_run_at is None
    assert scheduling.dispatch_due_schedules(now=at(2026, 3, 9)) == []


@pytest.mark.django_db
def test_a_run_that_exists_for_the_period_is_not_made_again(make_schedule):
    # As when a schedule is edited back to a time whose run was already made.
    schedule = make_schedule(now=at(2026, 3, 2, 7))
    ScheduleRun.objects.create(schedule=schedule, period_start=at(2026, 3, 2, 8))
    assert scheduling.dispatch_due_schedules(now=at(2026, 3, 2, 8, 1)) == []
    assert ScheduleRun.objects.count() == 1
    schedule.refresh_from_db()
    assert schedule.next_run_at == at(2026, 3, 3, 8)


@pytest.mark.django_db(transaction=True)
def test_two_dispatchers_at_once_fire_a_schedule_once(make_schedule):
    """Beat started twice: the second dispatcher skips the schedule the first has locked."""
    make_schedule(now=at(2026, 3, 2, 7))
    now = at(2026, 3, 2, 8, 0, 10)
    locked, release = threading.Event(), threading.Event()
    results = {}

    def first():
        try:
            with transaction.atomic():
                due = list(Schedule.objects.due(now).select_for_update(skip_locked=True))
                results["first saw"] = len(due)
                locked.set()
                release.wait(10)
            results["first"] = scheduling.dispatch_due_schedules(now=now)
        finally:
            connection.close()

    thread = threading.Thread(target=first)
    thread.start()
    assert locked.wait(10)
    # While the first holds the row, the second finds nothing to do.
    assert scheduling.dispatch_due_schedules(now=now) == []
    release.set()
    thread.join(10)
    assert results["first saw"] == 1
    assert len(results["first"]) == 1
    assert ScheduleRun.objects.count() == 1


# The pages -------------------------------------------------------------------------------------


def form_data(report, users, **changes):
    data = {
        "report": str(report.pk),
        "formats": "both",
        "frequency": "weekly",
        "weekday": "0",
        "day_of_month": "",
        "time": "08:00",
        "time_zone": "Asia/Shanghai",
        "recipients": [str(user.pk) for user in users],
    }
    data.update(changes)
    return data


@pytest.mark.django_db
def test_a_manager_schedules_a_report_and_sees_the_next_run_in_its_time_zone(
    manager_client, manager, report, english
):
    response = manager_client.post(
        reverse("schedules:create"),
        form_data(report, [manager], time="09:15", time_zone="America/New_York", weekday="2"),
    )
    schedule = Schedule.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("schedules:detail", args=[schedule.pk])
    assert schedule.owner == manager and schedule.weekday == 2 and schedule.formats == "both"
    local = schedule.next_run_local()
    assert local.tzinfo == zoneinfo.ZoneInfo("America/New_York")
    assert (local.weekday(), local.hour, local.minute) == (2, 9, 15)

    page = manager_client.get(response["Location"])
    content = page.content.decode()
    assert "Weekly on Wednesday at 09:15 (America/New_York)" in content
    assert f"{local:%Y-%m-%d %H:%M} (America/New_York)" in content

    entry = AuditEntry.objects.get(action=Action.SCHEDULE_CREATE)
    assert entry.actor_id == manager.pk and entry.object_id == str(schedule.pk)
    assert entry.data["changes"]["recipients"] == [None, ["manager"]]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"weekday": ""}, "weekday", "Choose the day of the week."),
        (
            {"frequency": "monthly", "day_of_month": ""},
            "day_of_month",
            "Choose the day of the month",
        ),
        (
            {"frequency": "monthly", "day_of_month": "32"},
            "day_of_month",
            "less than or equal to 31",
        ),
        ({"time": "25:00"}, "time", "Enter a valid time."),
        ({"time_zone": "Mars/Olympus"}, "time_zone", "Select a valid choice."),
        ({"formats": "docx"}, "formats", "Select a valid choice."),
        ({"recipients": []}, "recipients", "This field is required."),
        ({"report": "0190f2a4-0000-7000-8000-000000000000"}, "report", "Select a valid choice."),
        ({"report": "not-a-report"}, "report", "Select a valid choice."),
        ({"recipients": ["x"]}, "recipients", "is not a valid value."),
    ],
)
def test_the_form_explains_what_is_wrong(
    manager_client, manager, report, english, changes, field, message
):
    data = form_data(report, [manager])
    data.update(changes)
    response = manager_client.post(reverse("schedules:create"), data)
    assert response.status_code == 200
    assert message in " ".join(response.context["form"].errors[field])
    assert Schedule.objects.count() == 0


@pytest.mark.django_db
def test_recipients_must_see_the_report_and_have_an_email(
    manager_client, manager, staff, staff2, report, english
):
    staff2.email = ""
    staff2.save()
    report.shared_with_users.add(staff2)
    response = manager_client.post(reverse("schedules:create"), form_data(report, [staff, staff2]))
    errors = response.context["form"].errors["recipients"]
    assert "staff2 have no email address." in errors
    assert "This report is not shared with staff. Share it with them first." in errors
    inactive = make_user("gone", email="gone@example.com", is_active=False)
    response = manager_client.post(reverse("schedules:create"), form_data(report, [inactive]))
    assert "Select a valid choice." in response.context["form"].errors["recipients"][0]


@pytest.mark.django_db
def test_a_manager_cannot_schedule_someone_elses_unshared_report(
    manager_client, manager, staff, english
):
    theirs = SavedReport.objects.create(name="Staff's", definition=BY_PROVINCE, owner=staff)
    response = manager_client.post(reverse("schedules:create"), form_data(theirs, [manager]))
    assert response.status_code == 200
    assert "report" in response.context["form"].errors


@pytest.mark.django_db
def test_editing_pausing_and_deleting_are_audited(manager_client, make_schedule, manager, report):
    schedule = make_schedule(now=at(2026, 3, 2, 7), frequency="weekly", weekday=0)
    edit = reverse("schedules:edit", args=[schedule.pk])
    assert manager_client.get(edit).status_code == 200
    response = manager_client.post(
        edit, form_data(report, [manager], frequency="daily", time="18:30")
    )
    assert response.status_code == 302
    schedule.refresh_from_db()
    assert schedule.frequency == "daily" and schedule.weekday is None
    assert schedule.next_run_local().time() == datetime.time(18, 30)
    update = AuditEntry.objects.get(action=Action.SCHEDULE_UPDATE)
    assert update.data["changes"]["frequency"] == ["weekly", "daily"]

    manager_client.post(reverse("schedules:pause", args=[schedule.pk]))
    schedule.refresh_from_db()
    assert schedule.paused and schedule.next_run_at is None
    manager_client.post(reverse("schedules:pause", args=[schedule.pk]))
    schedule.refresh_from_db()
    assert not schedule.paused and schedule.next_run_at is not None
    assert AuditEntry.objects.filter(action=Action.SCHEDULE_UPDATE).count() == 3

    assert manager_client.get(reverse("schedules:delete", args=[schedule.pk])).status_code == 200
    response = manager_client.post(reverse("schedules:delete", args=[schedule.pk]))
    assert response["Location"] == reverse("schedules:list")
    assert not Schedule.objects.exists()
    deleted = AuditEntry.objects.get(action=Action.SCHEDULE_DELETE)
    assert deleted.data["changes"]["report"] == ["Customers by province", None]


@pytest.mark.django_db
def test_others_schedules_are_404_and_staff_are_refused(
    make_schedule, client, staff, verified_login, admin_client, teams
):
    schedule = make_schedule(now=at(2026, 3, 2, 7))
    other_manager = make_user("manager2", role=roles.MANAGER, teams=[teams[1]])
    other = verified_login(client, other_manager)
    for name in ("detail", "edit", "delete"):
        assert other.get(reverse(f"schedules:{name}", args=[schedule.pk])).status_code == 404
    assert other.post(reverse("schedules:pause", args=[schedule.pk])).status_code == 404
    assert schedule.report.name not in other.get(reverse("schedules:list")).content.decode()
    # Administrators see every schedule, with its failures.
    assert admin_client.get(reverse("schedules:detail", args=[schedule.pk])).status_code == 200
    client.force_login(staff)
    assert client.get(reverse("schedules:list")).status_code == 403
    assert client.post(reverse("schedules:pause", args=[schedule.pk])).status_code == 403


@pytest.mark.django_db
def test_failures_and_skipped_recipients_show_why_on_the_schedule_pages(
    manager_client, make_schedule, staff, english
):
    schedule = make_schedule(now=at(2026, 3, 2, 7), recipients=[staff])
    (first,) = scheduling.dispatch_due_schedules(now=at(2026, 3, 2, 8, 1))
    scheduling.execute_run(first.pk)
    first.refresh_from_db()
    # Nobody to send to is not a failure: the run is done, its recipient skipped with a reason.
    assert first.state == ScheduleRun.State.DONE
    assert first.deliveries.get().state == Delivery.State.SKIPPED
    (second,) = scheduling.dispatch_due_schedules(now=at(2026, 3, 3, 8, 1))
    scheduling.give_up(second.pk, "The mail server is down.")
    second.refresh_from_db()
    assert second.state == ScheduleRun.State.FAILED
    assert second.deliveries.get().state == Delivery.State.FAILED
    failed = AuditEntry.objects.get(action=Action.SCHEDULE_FAILED)
    assert failed.actor_id is None and failed.object_id == str(schedule.pk)
    assert failed.data["error"] == "The mail server is down." and failed.data["failed"] == ["staff"]

    page = manager_client.get(reverse("schedules:detail", args=[schedule.pk])).content.decode()
    assert "The report is not shared with the recipient." in page
    assert "The mail server is down." in page
    listing = manager_client.get(reverse("schedules:list")).content.decode()
    assert "The mail server is down." in listing


@pytest.mark.django_db
def test_the_demo_schedule_is_weekly_for_the_manager_and_made_once(manager, report):
    first = scheduling.create_demo_schedule(manager=manager)
    again = scheduling.create_demo_schedule(manager=manager)
    assert first == again and Schedule.objects.count() == 1
    assert first.frequency == "weekly" and first.report == report
    assert list(first.recipients.all()) == [manager]
    assert first.next_run_local().weekday() == first.weekday


@pytest.mark.django_db
def test_no_demo_schedule_without_the_demo_report(manager):
    assert scheduling.create_demo_schedule(manager=manager) is None


@pytest.mark.django_db
def test_the_dispatch_benchmark_leaves_nothing_behind():
    figures = scheduling.measure_dispatch(schedules=20, recipients=2)
    assert figures["schedules"] == 20 and figures["deliveries"] == 40
    assert figures["dispatch_ms"] > 0
    assert not Schedule.objects.exists() and not ScheduleRun.objects.exists()


@pytest.mark.django_db
def test_the_new_schedule_form_preselects_a_report_and_ignores_a_bad_one(manager_client, report):
    url = reverse("schedules:create")
    response = manager_client.get(f"{url}?report={report.pk}")
    assert response.status_code == 200
    assert response.context["form"]["report"].value() == str(report.pk)
    assert manager_client.get(f"{url}?report=nonsense").status_code == 200
    assert manager_client.get(url).context["form"]["time_zone"].value() == "Asia/Shanghai"
