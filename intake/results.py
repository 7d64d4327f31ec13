"""Results of a form or survey: how its questions were answered, computed in the database.

The structured answers (Submission.answers) are JSON readable to SQL; each kind of question is
summed up by one aggregate query over the counted submissions, however many there are, so no
submission is loaded into Python for the figures. Free-text answers are encrypted and are read
a page at a time (`text_answers_page`).

Only submissions that were received count: those still waiting for their email or mobile
number to be verified (state "pending") may never be confirmed and are left out.
"""

import datetime
import zoneinfo
from dataclasses import dataclass, field

from django import forms
from django.conf import settings
from django.db import connection
from django.utils.translation import gettext_lazy as _

from accounts.permissions import visible_customers
from cims.paging import keyset_page
from customers.models import Channel
from intake.answer_forms import DateInput
from intake.models import FormField, Submission

Type = FormField.Type

COUNTED_STATES = (Submission.State.RECEIVED, Submission.State.REVIEW, Submission.State.DONE)

# Questions answered with one value each, counted per value.
SINGLE_VALUE_TYPES = (Type.CHOICE, Type.BOOLEAN, Type.CONSENT, Type.RATING, Type.NPS)
DISTRIBUTION_TYPES = (*SINGLE_VALUE_TYPES, Type.MULTI_CHOICE)
SCALES = {Type.RATING: range(1, 6), Type.NPS: range(0, 11)}
# Net Promoter Score groups: 0-6 detractors, 7-8 passives, 9-10 promoters.
DETRACTORS, PASSIVES, PROMOTERS = range(0, 7), range(7, 9), range(9, 11)

TEXT_PAGE_SIZE = 25


class ResultsFilterForm(forms.Form):
    """Which submissions count: a range of days they were submitted on (in TIME_ZONE), and
    the channel they came through."""

    submitted_from = forms.DateField(label=_("Submitted from"), required=False, widget=DateInput)
    submitted_to = forms.DateField(label=_("Submitted until"), required=False, widget=DateInput)
    channel = forms.ChoiceField(
        label=_("Channel"),
        required=False,
        choices=[("", _("All channels")), *Channel.choices],
    )

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("submitted_from"), cleaned.get("submitted_to")
        if start and end and start > end:
            self.add_error("submitted_to", _("The end of the range is before its start."))
        return cleaned

    def description(self):
        """The filters as JSON-ready values, for the audit trail."""
        data = self.cleaned_data if self.is_valid() else {}
        return {
            name: value.isoformat() if isinstance(value, datetime.date) else value
            for name, value in data.items()
            if value
        }


def counted_submissions(form, filters=None):
    """The submissions of `form` that count, narrowed by the cleaned data of a filter form."""
    queryset = Submission.objects.filter(form=form, state__in=COUNTED_STATES)
    filters = filters or {}
    zone = zoneinfo.ZoneInfo(settings.TIME_ZONE)
    if start := filters.get("submitted_from"):
        queryset = queryset.filter(
            created_at__gte=datetime.datetime.combine(start, datetime.time(), tzinfo=zone)
        )
    if end := filters.get("submitted_to"):
        next_day = end + datetime.timedelta(days=1)
        queryset = queryset.filter(
            created_at__lt=datetime.datetime.combine(next_day, datetime.time(), tzinfo=zone)
        )
    if channel := filters.get("channel"):
        queryset = queryset.filter(channel=channel)
    return queryset


@dataclass
class Row:
    value: str
    label: str
    count: int
    share: float  # of the respondents who answered the question, 0 to 1

    @property
    def percent(self):
        return round(self.share * 100, 1)


@dataclass
class NumberSummary:
    count: int
    minimum: float | None
    average: float | None
    maximum: float | None


@dataclass
class NetPromoterScore:
    detractors: int
    passives: int
    promoters: int

    @property
    def total(self):
        return self.detractors + self.passives + self.promoters

    def _percent(self, count):
        return round(100 * count / self.total, 1) if self.total else 0.0

    @property
    def score(self):
        """Promoters' share minus detractors' share, in percentage points (-100 to 100)."""
        if not self.total:
            return None
        return round(100 * (self.promoters - self.detractors) / self.total)

    @property
    def groups(self):
        return [
            (_("Detractors (0–6)"), self.detractors, self._percent(self.detractors)),
            (_("Passives (7–8)"), self.passives, self._percent(self.passives)),
            (_("Promoters (9–10)"), self.promoters, self._percent(self.promoters)),
        ]


@dataclass
class QuestionResult:
    field: FormField
    answered: int = 0
    rows: list = field(default_factory=list)
    average: float | None = None
    nps: NetPromoterScore | None = None
    number: NumberSummary | None = None

    @property
    def key(self):
        return self.field.key

    @property
    def chart_id(self):
        return f"chart-{self.field.key}"

    def chart(self):
        """The figures a chart of this question draws (see static/js/charts.js)."""
        kind = {
            Type.BOOLEAN: "pie",
            Type.CONSENT: "pie",
            Type.RATING: "columns",
            Type.NPS: "nps",
        }.get(self.field.type, "bars")
        return {
            "id": self.chart_id,
            "kind": kind,
            "title": self.field.display_label,
            "labels": [row.label for row in self.rows],
            "counts": [row.count for row in self.rows],
        }


@dataclass
class Results:
    total: int
    questions: list

    def charts(self):
        return [q.chart() for q in self.questions if q.rows and q.answered]


def form_results(form, submissions):
    """The Results of `form` over the `submissions` queryset (see counted_submissions)."""
    fields = list(form.fields.all())
    by_key = {f.key: QuestionResult(f) for f in fields if f.type in (*DISTRIBUTION_TYPES,)}
    single = [f.key for f in fields if f.type in SINGLE_VALUE_TYPES]
    multi = [f.key for f in fields if f.type == Type.MULTI_CHOICE]
    numbers = [f.key for f in fields if f.type == Type.NUMBER]
    total = submissions.order_by().count()

    counts = {key: {} for key in by_key}
    for key, value, count in _single_value_counts(submissions, single) if single else ():
        counts[key][value] = count
    respondents = {}
    for key, value, count in _multi_choice_counts(submissions, multi) if multi else ():
        if value is None:
            respondents[key] = count
        else:
            counts[key][value] = count
    for key, result in by_key.items():
        answered = (
            respondents.get(key, 0)
            if result.field.type == Type.MULTI_CHOICE
            else sum(counts[key].values())
        )
        _summarise(result, counts[key], answered)

    number_results = {key: QuestionResult(f) for f in fields if (key := f.key) in numbers}
    for key, count, minimum, average, maximum in (
        _number_summaries(submissions, numbers) if numbers else ()
    ):
        number_results[key].answered = count
        number_results[key].number = NumberSummary(
            count, _number(minimum), _number(average), _number(maximum)
        )
    for result in number_results.values():
        if result.number is None:
            result.number = NumberSummary(0, None, None, None)

    questions = [
        by_key.get(f.key) or number_results[f.key]
        for f in fields
        if f.key in by_key or f.key in number_results
    ]
    return Results(total=total, questions=questions)


def _summarise(result, counts, answered):
    """Fill in a distribution question's rows (every option, answered or not) and figures."""
    field_type = result.field.type
    result.answered = answered
    if field_type in SCALES:
        options = [(str(n), str(n)) for n in SCALES[field_type]]
    elif field_type in (Type.BOOLEAN, Type.CONSENT):
        no_label = _("Not given") if field_type == Type.CONSENT else _("No")
        yes_label = _("Given") if field_type == Type.CONSENT else _("Yes")
        options = [("true", yes_label), ("false", no_label)]
    else:
        options = result.field.display_choices()
    known = {value for value, _label in options}
    # Answers to options since removed from the form still count, under their stored value.
    options += [(value, value) for value in sorted(counts) if value not in known]
    result.rows = [
        Row(
            value,
            str(label),
            counts.get(value, 0),
            counts.get(value, 0) / answered if answered else 0,
        )
        for value, label in options
    ]
    if field_type in SCALES and answered:
        scored = [(int(row.value), row.count) for row in result.rows if row.value.isdigit()]
        scored_total = sum(count for _value, count in scored)
        if scored_total:
            result.average = round(sum(v * c for v, c in scored) / scored_total, 2)
        if field_type == Type.NPS:
            by_value = dict(scored)
            result.nps = NetPromoterScore(
                detractors=sum(by_value.get(v, 0) for v in DETRACTORS),
                passives=sum(by_value.get(v, 0) for v in PASSIVES),
                promoters=sum(by_value.get(v, 0) for v in PROMOTERS),
            )


def _number(value):
    return None if value is None else float(value)


def _submissions_sql(submissions):
    """The SQL of the counted submissions' ids and answers, to aggregate over."""
    query = submissions.order_by().values("id", "answers").query
    return query.sql_with_params()


def _fetch(sql, params):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _single_value_counts(submissions, keys):
    """(key, value as text, count) of every answer given to the questions `keys`."""
    inner, params = _submissions_sql(submissions)
    sql = f"""
        WITH s AS ({inner})
        SELECT q.key, s.answers ->> q.key AS value, count(*)
        FROM s CROSS JOIN unnest(%s::text[]) AS q(key)
        WHERE s.answers ->> q.key IS NOT NULL
          AND jsonb_typeof(s.answers -> q.key) IN ('string', 'number', 'boolean')
        GROUP BY 1, 2
    """
    return _fetch(sql, [*params, keys])


def _multi_choice_counts(submissions, keys):
    """(key, option, count) of every option chosen in the questions `keys`, and
    (key, None, respondents) with the number of submissions that chose at least one."""
    inner, params = _submissions_sql(submissions)
    sql = f"""
        WITH s AS ({inner}),
        answered AS (
            SELECT s.id, q.key, s.answers -> q.key AS chosen
            FROM s CROSS JOIN unnest(%s::text[]) AS q(key)
            WHERE jsonb_typeof(s.answers -> q.key) = 'array'
              AND jsonb_array_length(s.answers -> q.key) > 0
        )
        SELECT a.key, o.value, count(DISTINCT a.id)
        FROM answered a CROSS JOIN LATERAL jsonb_array_elements_text(a.chosen) AS o(value)
        GROUP BY 1, 2
        UNION ALL
        SELECT a.key, NULL, count(*) FROM answered a GROUP BY 1
    """
    return _fetch(sql, [*params, keys])


def _number_summaries(submissions, keys):
    """(key, count, min, average, max) of the numeric answers to the questions `keys`."""
    inner, params = _submissions_sql(submissions)
    sql = f"""
        WITH s AS ({inner})
        SELECT n.key, count(*), min(n.value), avg(n.value), max(n.value)
        FROM (
            SELECT q.key,
                   CASE WHEN jsonb_typeof(s.answers -> q.key) = 'number'
                        THEN (s.answers ->> q.key)::numeric END AS value
            FROM s CROSS JOIN unnest(%s::text[]) AS q(key)
        ) AS n
        WHERE n.value IS NOT NULL
        GROUP BY 1
    """
    return _fetch(sql, [*params, keys])


# Free-text answers ------------------------------------------------------------------------------


def text_fields(form):
    """The questions whose answers are kept encrypted: free text, contact details, dates."""
    return [f for f in form.fields.all() if f.is_private]


@dataclass
class TextAnswerRow:
    submission: Submission
    answers: list  # in the order of the text fields; "" where unanswered
    customer_name: str | None  # None unless the user may see the customer


def text_answers_page(user, submissions, fields, *, after=None, before=None):
    """One page of submissions, newest first, with their free-text answers decrypted.

    Each row links to its customer only when `user` may see that customer. Raises
    cims.paging.BadCursor for a page link that is not valid.
    """
    page = keyset_page(
        submissions.select_related(None).only(
            "id", "created_at", "channel", "event", "customer", "private_answers"
        ),
        order=["-created_at", "-id"],
        size=TEXT_PAGE_SIZE,
        after=after,
        before=before,
    )
    customer_ids = {s.customer_id for s in page.items if s.customer_id}
    names = {}
    if customer_ids:
        names = dict(
            visible_customers(user).filter(pk__in=customer_ids).values_list("pk", "display_name")
        )
    page.items = [
        TextAnswerRow(
            submission=submission,
            answers=[_shown(submission.private_answers.get(f.key)) for f in fields],
            customer_name=names.get(submission.customer_id),
        )
        for submission in page.items
    ]
    return page


def _shown(value):
    if value in (None, ""):
        return ""
    return str(value)
