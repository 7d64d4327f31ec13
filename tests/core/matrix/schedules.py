"""Report schedules: for those with reports.add/change/delete_schedule (administrators and
managers); everyone else is refused (403) before any schedule is looked up. The schedule is the
manager's: administrators see every schedule, and another manager would get 404."""

from tests.core.matrix import OK, both, every, get, post

SCHEDULERS = every(403, admin=OK, manager=OK)

RULES = {
    "schedules:list": get(SCHEDULERS),
    # An empty POST is shown the form again with its errors (400).
    "schedules:create": both(SCHEDULERS),
    "schedules:detail": get(SCHEDULERS),
    "schedules:edit": both(SCHEDULERS),
    "schedules:pause": post(SCHEDULERS),
    "schedules:delete": both(SCHEDULERS),
}


def make_objects(objects, users):
    import datetime

    from reports import scheduling
    from reports.models import SavedReport, Schedule

    manager = users["manager"]
    report = SavedReport.objects.create(
        name="Matrix report",
        definition={
            "source": "customers",
            "group_by": ["province"],
            "aggregates": [{"func": "count"}],
        },
        owner=manager,
    )
    schedule = Schedule(report=report, owner=manager, frequency="daily", time=datetime.time(8))
    scheduling.plan(schedule)
    schedule.save()
    schedule.recipients.set([manager])
    return {"schedule": schedule}


def url_kwargs(name, objects):
    if name in ("schedules:detail", "schedules:edit", "schedules:pause", "schedules:delete"):
        return {"pk": objects["schedule"].pk}
    return None
