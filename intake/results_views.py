"""Results of forms and surveys: the figures page and its Excel export."""

import datetime

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import BadRequest, PermissionDenied
from django.http import FileResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from accounts import audit
from cims.paging import BadCursor
from intake import results, spreadsheets
from intake.models import Form, FormField, Submission

Type = FormField.Type
EXPORT_BATCH = 2000


def _results_form_for(user, pk):
    """The form `pk` whose results `user` wants: anyone who may see forms may see results."""
    if not user.has_perm("intake.view_form"):
        raise PermissionDenied
    return get_object_or_404(Form, pk=pk)


def _may_read_text(user):
    # Free text and contact details may hold personal data: only those who build forms (and
    # so decide what is asked) read them.
    return user.has_perm("intake.change_form")


@require_GET
def form_results(request, pk):
    form = _results_form_for(request.user, pk)
    filters = results.ResultsFilterForm(request.GET or None)
    context = {
        "form": form,
        "filters": filters,
        "query": _filter_query(request),
        "may_read_text": _may_read_text(request.user),
        "counted_states": [Submission.State(s).label for s in results.COUNTED_STATES],
    }
    if request.GET and not filters.is_valid():
        return render(request, "intake/results/form_results.html", context, status=400)
    submissions = results.counted_submissions(form, filters.cleaned_data if request.GET else None)
    summary = results.form_results(form, submissions)
    context.update(results=summary, charts=summary.charts())
    fields = results.text_fields(form)
    if fields and context["may_read_text"]:
        try:
            page = results.text_answers_page(
                request.user,
                submissions,
                fields,
                after=request.GET.get("after"),
                before=request.GET.get("before"),
            )
        except BadCursor:
            raise BadRequest(_("This page link is not valid. Go back to the first page.")) from None
        context.update(text_fields=fields, text_page=page)
    context["has_text_fields"] = bool(fields)
    return render(request, "intake/results/form_results.html", context)


def _filter_query(request):
    """The filters of the page, without its paging position, for links that keep them."""
    query = request.GET.copy()
    for name in ("after", "before"):
        query.pop(name, None)
    return query


@require_GET
def form_results_export(request, pk):
    """The results as an Excel workbook: the figures, and every counted submission's answers."""
    form = _results_form_for(request.user, pk)
    filters = results.ResultsFilterForm(request.GET or None)
    if request.GET and not filters.is_valid():
        messages.error(request, _("Correct the filters before exporting."))
        return redirect(
            reverse("intake:form_results", args=[form.pk]) + "?" + request.GET.urlencode()
        )
    cleaned = filters.cleaned_data if request.GET else {}
    submissions = results.counted_submissions(form, cleaned)
    summary = results.form_results(form, submissions)
    limit = settings.INTAKE_EXPORT_MAX_ROWS
    if summary.total > limit:
        messages.error(
            request,
            _(
                "%(count)s submissions match, more than the %(limit)s an export may hold. "
                "Choose a shorter date range."
            )
            % {"count": summary.total, "limit": limit},
        )
        return redirect(
            reverse("intake:form_results", args=[form.pk]) + "?" + request.GET.urlencode()
        )
    with_text = _may_read_text(request.user)
    workbook = spreadsheets.new_workbook()
    _write_summary(workbook, summary)
    rows = _write_answers(workbook, form, submissions, with_text=with_text)
    file = spreadsheets.save_to_temporary_file(workbook)
    audit.record(
        audit.Action.EXPORT,
        target=form,
        data={
            "form": form.slug,
            "filters": filters.description() if request.GET else {},
            "rows": rows,
            "free_text": with_text,
        },
    )
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
    return FileResponse(
        file,
        as_attachment=True,
        filename=f"{form.slug}-results-{stamp}.xlsx",
        content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    )


def _write_summary(workbook, summary):
    labels = [_("Question"), _("Answer"), _("Count"), _("Share"), _("Value")]
    sheet = spreadsheets.table_sheet(workbook, _("Summary"), labels, widths=(40, 28, 10, 10, 10))
    cell = spreadsheets.safe_cell
    percent = spreadsheets.PERCENT_FORMAT
    count = 1
    sheet.append([cell(sheet, _("All submissions")), None, cell(sheet, summary.total)])
    count += 1
    for question in summary.questions:
        label = question.field.display_label
        share = question.answered / summary.total if summary.total else 0
        sheet.append(
            [
                cell(sheet, label, font=spreadsheets.SECTION_FONT),
                cell(sheet, _("Answered")),
                cell(sheet, question.answered),
                cell(sheet, share, number_format=percent),
            ]
        )
        count += 1
        for row in question.rows:
            sheet.append(
                [
                    cell(sheet, label),
                    cell(sheet, row.label),
                    cell(sheet, row.count),
                    cell(sheet, row.share, number_format=percent),
                ]
            )
            count += 1
        for name, value in _figures(question):
            sheet.append([cell(sheet, label), cell(sheet, name), None, None, cell(sheet, value)])
            count += 1
    spreadsheets.add_filter(sheet, len(labels), count)


def _figures(question):
    figures = []
    if question.average is not None:
        figures.append((_("Average"), question.average))
    if question.nps is not None and question.nps.score is not None:
        figures.append((_("Net Promoter Score"), question.nps.score))
        for name, number, _percent in question.nps.groups:
            figures.append((str(name), number))
    if question.number is not None and question.number.count:
        figures += [
            (_("Minimum"), question.number.minimum),
            (_("Average"), question.number.average),
            (_("Maximum"), question.number.maximum),
        ]
    return figures


def _write_answers(workbook, form, submissions, *, with_text):
    """One row per counted submission, oldest first; returns the number of rows."""
    fields = [f for f in form.fields.all() if with_text or not f.is_private]
    labels = [_("Submitted at"), _("Channel"), _("Event"), *(f.display_label for f in fields)]
    widths = (18, 12, 18, *(24 for _f in fields))
    sheet = spreadsheets.table_sheet(workbook, _("Answers"), labels, widths=widths)
    columns = ["id", "created_at", "channel", "event", "answers"]
    if with_text:
        columns.append("private_answers")
    queryset = submissions.only(*columns).order_by("created_at", "id")
    choice_labels = {f.key: dict(f.display_choices()) for f in fields}
    channels = dict(Submission._meta.get_field("channel").choices)
    rows, last = 0, None
    # Keyset batches: memory stays flat however many submissions there are, and the private
    # answers are decrypted one batch at a time.
    while batch := list(_after(queryset, last)[:EXPORT_BATCH]):
        for submission in batch:
            values = [
                submission.created_at,
                str(channels.get(submission.channel, submission.channel)),
                submission.event,
                *(_cell_value(f, submission, choice_labels[f.key]) for f in fields),
            ]
            sheet.append([spreadsheets.safe_cell(sheet, value) for value in values])
        rows += len(batch)
        last = (batch[-1].created_at, batch[-1].pk)
    spreadsheets.add_filter(sheet, len(labels), rows + 1)
    return rows


def _after(queryset, last):
    if last is None:
        return queryset
    created_at, pk = last
    return queryset.filter(created_at__gte=created_at).exclude(created_at=created_at, id__lte=pk)


def _cell_value(field, submission, labels):
    if field.is_private:
        value = submission.private_answers.get(field.key)
    else:
        value = submission.answers.get(field.key)
    if value is None or value == "":
        return None
    match field.type:
        case Type.CHOICE:
            return str(labels.get(value, value))
        case Type.MULTI_CHOICE:
            chosen = value if isinstance(value, list) else [value]
            return [str(labels.get(v, v)) for v in chosen]
        case Type.BOOLEAN | Type.CONSENT:
            return _("Yes") if value is True else _("No") if value is False else str(value)
        case Type.DATE:
            try:
                return datetime.date.fromisoformat(value)
            except (TypeError, ValueError):
                return str(value)
        case Type.NUMBER | Type.RATING | Type.NPS:
            return (
                value
                if isinstance(value, int | float) and not isinstance(value, bool)
                else str(value)
            )
    return str(value)
