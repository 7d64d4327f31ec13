"""The form of a report schedule: which report, how often, when, in which formats, for whom."""

import zoneinfo

from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from reports import scheduling
from reports.models import SavedReport, Schedule

User = get_user_model()


def time_zone_choices():
    return [(name, name) for name in sorted(zoneinfo.available_timezones())]


class RecipientsField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, user):
        name = user.get_full_name() or user.get_username()
        return f"{name} <{user.email}>" if user.email else name


class ScheduleForm(forms.ModelForm):
    report = forms.ModelChoiceField(queryset=SavedReport.objects.none(), label=_("Report"))
    time = forms.TimeField(
        label=_("Time"),
        widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
        help_text=_("In the schedule's time zone."),
    )
    time_zone = forms.ChoiceField(label=_("Time zone"), choices=time_zone_choices)
    day_of_month = forms.IntegerField(
        label=_("Day of the month"),
        min_value=1,
        max_value=31,
        required=False,
        help_text=_("For monthly schedules. In shorter months, the 29th to 31st is the last day."),
    )
    recipients = RecipientsField(
        queryset=User.objects.none(),
        label=_("Recipients"),
        help_text=_(
            "Each recipient gets the rows they may see. Hold Ctrl (⌘ on a Mac) to choose more "
            "than one."
        ),
        widget=forms.SelectMultiple(attrs={"size": 8}),
    )

    class Meta:
        model = Schedule
        fields = [
            "report",
            "formats",
            "frequency",
            "weekday",
            "day_of_month",
            "time",
            "time_zone",
            "recipients",
        ]
        widgets = {"formats": forms.RadioSelect, "frequency": forms.RadioSelect}
        help_texts = {"weekday": _("For weekly schedules.")}

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        reports = scheduling.schedulable_reports(user)
        if not self.instance._state.adding:
            # An administrator editing someone else's schedule keeps its report on offer.
            reports = SavedReport.objects.filter(
                Q(pk__in=reports.values("pk")) | Q(pk=self.instance.report_id)
            )
        self.fields["report"].queryset = reports.order_by("name")
        self.fields["recipients"].queryset = User.objects.filter(is_active=True).order_by(
            "username"
        )
        self.fields["weekday"].required = False
        if self.instance._state.adding:
            # The user's own time zone when accounts have one, else the server's.
            self.initial["time_zone"] = getattr(user, "time_zone", "") or settings.TIME_ZONE
            self.initial.setdefault("recipients", [user.pk])
            self.initial.setdefault("weekday", Schedule.Weekday.MONDAY)

    def clean(self):
        data = super().clean()
        frequency = data.get("frequency")
        if frequency == Schedule.Frequency.WEEKLY:
            if data.get("weekday") is None and "weekday" not in self.errors:
                self.add_error("weekday", _("Choose the day of the week."))
        else:
            data["weekday"] = None
        if frequency == Schedule.Frequency.MONTHLY:
            if data.get("day_of_month") is None and "day_of_month" not in self.errors:
                self.add_error("day_of_month", _("Choose the day of the month, 1 to 31."))
        else:
            data["day_of_month"] = None
        report, recipients = data.get("report"), data.get("recipients")
        if report is not None and recipients:
            self._check_recipients(report, recipients)
        return data

    def _check_recipients(self, report, recipients):
        without_email = [user for user in recipients if not user.email]
        if without_email:
            self.add_error(
                "recipients",
                _("%(names)s have no email address.") % {"names": _names(without_email)},
            )
        cannot_see = [
            user
            for user in recipients
            if not SavedReport.objects.visible_to(user).filter(pk=report.pk).exists()
        ]
        if cannot_see:
            self.add_error(
                "recipients",
                _("This report is not shared with %(names)s. Share it with them first.")
                % {"names": _names(cannot_see)},
            )

    def save(self, commit=True):
        schedule = super().save(commit=False)
        if schedule._state.adding or self.has_changed():
            scheduling.plan(schedule)
        if commit:
            schedule.save()
            self.save_m2m()
        return schedule


def _names(users):
    return ", ".join(user.get_username() for user in users)


def schedule_values(schedule):
    """What the audit trail records of a schedule."""
    return {
        "report": schedule.report.name,
        "formats": schedule.formats,
        "frequency": schedule.frequency,
        "weekday": schedule.weekday,
        "day_of_month": schedule.day_of_month,
        "time": schedule.time.strftime("%H:%M") if schedule.time else None,
        "time_zone": schedule.time_zone,
        "paused": schedule.paused,
        "recipients": sorted(schedule.recipients.values_list("username", flat=True)),
    }
