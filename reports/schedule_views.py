"""Pages of report schedules: list, create, see the runs, edit, pause and delete.

Everyone is refused (403) without the permission an action needs, before any schedule is
looked up; a schedule the user may not see is a 404. Every change is recorded in the audit
trail in the transaction that makes it.
"""

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import OuterRef, Prefetch, Subquery
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts import audit
from reports import scheduling
from reports.models import Delivery, Schedule, ScheduleRun
from reports.schedule_forms import ScheduleForm, schedule_values

RUNS_SHOWN = 20
SCHEDULE_PERMISSIONS = (
    "reports.add_schedule",
    "reports.change_schedule",
    "reports.delete_schedule",
)


def _require(user, *perms):
    if not any(user.has_perm(perm) for perm in perms):
        raise PermissionDenied


def _posted(request):
    return request.POST if request.method == "POST" else None


@require_GET
def schedule_list(request):
    _require(request.user, *SCHEDULE_PERMISSIONS)
    last_run = ScheduleRun.objects.filter(schedule=OuterRef("pk")).order_by("-period_start")
    schedules = (
        Schedule.objects.visible_to(request.user)
        .select_related("report", "owner")
        .annotate(
            last_state=Subquery(last_run.values("state")[:1]),
            last_error=Subquery(last_run.values("error")[:1]),
        )
    )
    return render(request, "reports/schedules/schedule_list.html", {"schedules": schedules})


@require_http_methods(["GET", "POST"])
def schedule_create(request):
    _require(request.user, "reports.add_schedule")
    initial = {"report": request.GET.get("report")} if request.method == "GET" else None
    form = ScheduleForm(_posted(request), user=request.user, initial=initial)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            schedule = form.save(commit=False)
            schedule.owner = request.user
            schedule.save()
            form.save_m2m()
            audit.record(
                audit.Action.SCHEDULE_CREATE,
                target=schedule,
                data={"changes": audit.changes({}, schedule_values(schedule))},
                request=request,
            )
        messages.success(request, _next_run_message(schedule))
        return redirect("schedules:detail", pk=schedule.pk)
    return _form_page(request, form, None)


@require_GET
def schedule_detail(request, pk):
    _require(request.user, *SCHEDULE_PERMISSIONS)
    schedule = scheduling.get_schedule_for(request.user, pk)
    runs = schedule.runs.prefetch_related(
        Prefetch("deliveries", Delivery.objects.select_related("recipient"))
    )[:RUNS_SHOWN]
    context = {
        "schedule": schedule,
        "runs": runs,
        "recipients": schedule.recipients.order_by("username"),
    }
    return render(request, "reports/schedules/schedule_detail.html", context)


@require_http_methods(["GET", "POST"])
def schedule_edit(request, pk):
    _require(request.user, "reports.change_schedule")
    schedule = scheduling.get_schedule_for(request.user, pk)
    before = schedule_values(schedule)
    form = ScheduleForm(_posted(request), instance=schedule, user=request.user)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            form.save()
            if changes := audit.changes(before, schedule_values(schedule)):
                audit.record(
                    audit.Action.SCHEDULE_UPDATE,
                    target=schedule,
                    data={"changes": changes},
                    request=request,
                )
        messages.success(request, _next_run_message(schedule))
        return redirect("schedules:detail", pk=schedule.pk)
    return _form_page(request, form, schedule)


def _form_page(request, form, schedule):
    context = {"form": form, "schedule": schedule}
    return render(request, "reports/schedules/schedule_form.html", context)


@require_POST
def schedule_pause(request, pk):
    """Pause a running schedule, or resume a paused one from the next due time."""
    _require(request.user, "reports.change_schedule")
    schedule = scheduling.get_schedule_for(request.user, pk)
    with transaction.atomic():
        schedule.paused = not schedule.paused
        scheduling.plan(schedule)
        schedule.save(update_fields=["paused", "next_run_at", "updated_at"])
        audit.record(
            audit.Action.SCHEDULE_UPDATE,
            target=schedule,
            data={"changes": {"paused": [not schedule.paused, schedule.paused]}},
            request=request,
        )
    if schedule.paused:
        messages.success(request, _("The schedule is paused; nothing is sent until resumed."))
    else:
        messages.success(request, _next_run_message(schedule))
    return redirect("schedules:detail", pk=schedule.pk)


@require_http_methods(["GET", "POST"])
def schedule_delete(request, pk):
    _require(request.user, "reports.delete_schedule")
    schedule = scheduling.get_schedule_for(request.user, pk)
    if request.method == "POST":
        with transaction.atomic():
            audit.record(
                audit.Action.SCHEDULE_DELETE,
                target=schedule,
                data={"changes": audit.changes(schedule_values(schedule), {})},
                request=request,
            )
            schedule.delete()
        messages.success(
            request, _("The schedule of %(report)s is deleted.") % {"report": schedule.report}
        )
        return redirect("schedules:list")
    return render(request, "reports/schedules/schedule_delete.html", {"schedule": schedule})


def _next_run_message(schedule):
    if schedule.paused or schedule.next_run_at is None:
        return _("Schedule saved. It is paused.")
    return _("Schedule saved. Next run: %(when)s (%(zone)s).") % {
        "when": schedule.next_run_local().strftime("%Y-%m-%d %H:%M"),
        "zone": schedule.time_zone,
    }
