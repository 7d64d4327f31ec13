"""The form builder: staff with the permission build forms and surveys, publish them and print
their QR codes. Every change is recorded in the audit trail inside the transaction making it.

Forms belong to the organisation rather than to a team, so the role's model permissions
(intake.view_form, add_form, change_form, delete_form) decide everything here.
"""

import urllib.parse

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import IntegrityError, transaction
from django.db.models import Count
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts import audit
from customers.models import Channel
from intake import qr
from intake.answer_forms import AnswerForm
from intake.builder_forms import FieldForm, FormSettingsForm
from intake.models import Form, FormField, Submission
from intake.public_views import render_form_page

FORMS_PER_PAGE = 50
SETTINGS_AUDITED = FormSettingsForm.Meta.fields
FIELD_AUDITED = ["key", "type", "label", "label_en", "help_text", "help_text_en", "required"]
FIELD_AUDITED += ["target", "choices", "wording_version"]


def _require(user, action):
    if not user.has_perm(f"intake.{action}_form"):
        raise PermissionDenied


def get_form_for(user, pk, action="view"):
    """The form `pk` if the user's role lets them `action` ("view", "change", "delete") forms."""
    _require(user, action)
    return get_object_or_404(Form.objects.select_related("owner", "team"), pk=pk)


def _field_of(form, field_pk):
    return get_object_or_404(FormField, form=form, pk=field_pk)


def _posted(request):
    return request.POST if request.method == "POST" else None


def _values(instance, names):
    values = {}
    for name in names:
        value = getattr(instance, f"{name}_id" if name in ("owner", "team") else name)
        values[name] = value
    return values


# Forms ---------------------------------------------------------------------------------------


@require_GET
def form_list(request):
    _require(request.user, "view")
    kind = request.GET.get("kind", "")
    forms = Form.objects.order_by("-created_at", "-id")
    if kind in Form.Kind.values:
        forms = forms.filter(kind=kind)
    page = Paginator(forms, FORMS_PER_PAGE).get_page(request.GET.get("page"))
    # One grouped query for the page's counts, read from the (form, created_at) index.
    counts = dict(
        Submission.objects.filter(form__in=[form.pk for form in page])
        .values_list("form")
        .annotate(n=Count("*"))
        .values_list("form", "n")
    )
    for form in page:
        form.submission_count = counts.get(form.pk, 0)
    context = {
        "page": page,
        "kind": kind,
        "kinds": Form.Kind.choices,
        "can_add": request.user.has_perm("intake.add_form"),
    }
    return render(request, "intake/builder/form_list.html", context)


@require_http_methods(["GET", "POST"])
def form_create(request):
    _require(request.user, "add")
    settings_form = FormSettingsForm(
        request.user, _posted(request), initial={"owner": request.user.pk}
    )
    if settings_form.is_valid():
        with transaction.atomic():
            form = settings_form.save(commit=False)
            form.created_by = request.user
            form.save()
            audit.record(audit.Action.FORM_CREATE, target=form, data={"slug": form.slug})
        messages.success(
            request, _("Form “%(title)s” created. Now add its questions.") % {"title": form.title}
        )
        return redirect("intake:form_detail", form.pk)
    return render(request, "intake/builder/form_settings.html", {"settings_form": settings_form})


@require_GET
def form_detail(request, pk):
    form = get_form_for(request.user, pk)
    channel = request.GET.get("channel", "")
    if channel not in Channel.values:
        channel = ""
    public_url = request.build_absolute_uri(form.get_absolute_url())
    link = f"{public_url}?{urllib.parse.urlencode({'channel': channel})}" if channel else public_url
    context = {
        "form": form,
        "fields": list(form.fields.all()),
        "submission_count": form.submissions.count(),
        "public_url": link,
        # Built with format_html so a quote in the title cannot break out of the attribute on
        # the site it is pasted into; the template shows it as text.
        "embed_code": format_html(
            '<iframe src="{}" title="{}" width="100%" height="900" style="border:0" '
            'loading="lazy"></iframe>',
            public_url,
            form.display_title,
        ),
        "channel": channel,
        "channels": Channel.choices,
        "qr_query": f"?{urllib.parse.urlencode({'channel': channel})}" if channel else "",
        "can_change": request.user.has_perm("intake.change_form"),
        "can_delete": request.user.has_perm("intake.delete_form"),
    }
    return render(request, "intake/builder/form_detail.html", context)


@require_http_methods(["GET", "POST"])
def form_edit(request, pk):
    form = get_form_for(request.user, pk, "change")
    before = _values(form, SETTINGS_AUDITED)
    settings_form = FormSettingsForm(request.user, _posted(request), instance=form)
    if settings_form.is_valid():
        with transaction.atomic():
            form = settings_form.save()
            changes = audit.changes(before, _values(form, SETTINGS_AUDITED))
            if changes:
                audit.record(audit.Action.FORM_UPDATE, target=form, data={"changes": changes})
        messages.success(request, _("Settings saved."))
        if "slug" in settings_form.changed_data and form.is_published:
            messages.warning(
                request,
                _(
                    "The form's address changed: links and QR codes with the old address no "
                    "longer work. Print new ones."
                ),
            )
        return redirect("intake:form_detail", form.pk)
    context = {"form": form, "settings_form": settings_form}
    return render(request, "intake/builder/form_settings.html", context)


@require_http_methods(["GET", "POST"])
def form_delete(request, pk):
    form = get_form_for(request.user, pk, "delete")
    if form.is_quick_entry:
        messages.error(request, _("The quick-entry page needs this form; it cannot be deleted."))
        return redirect("intake:form_detail", form.pk)
    has_submissions = form.submissions.exists()
    if request.method == "POST":
        if not has_submissions:
            try:
                with transaction.atomic():
                    audit.record(audit.Action.FORM_DELETE, target=form, data={"slug": form.slug})
                    form.delete()
            except IntegrityError:
                pass  # a submission arrived since the check, and the database refused
            else:
                messages.success(request, _("Form “%(title)s” deleted.") % {"title": form.title})
                return redirect("intake:form_list")
        messages.error(
            request,
            _("This form has submissions, so it cannot be deleted. Unpublish it instead."),
        )
        return redirect("intake:form_detail", form.pk)
    context = {"form": form, "has_submissions": has_submissions}
    return render(request, "intake/builder/form_delete.html", context)


@require_POST
def form_publish(request, pk):
    form = get_form_for(request.user, pk, "change")
    if form.is_quick_entry:
        messages.error(request, _("The quick-entry form is for staff only and is not published."))
        return redirect("intake:form_detail", form.pk)
    if not form.fields.exists():
        messages.error(request, _("Add at least one question before publishing the form."))
        return redirect("intake:form_detail", form.pk)
    if not form.is_published:
        with transaction.atomic():
            Form.objects.filter(pk=form.pk).update(published_at=timezone.now())
            audit.record(audit.Action.FORM_PUBLISH, target=form, data={"slug": form.slug})
    messages.success(request, _("Published: anyone with the link can fill in the form now."))
    return redirect("intake:form_detail", form.pk)


@require_POST
def form_unpublish(request, pk):
    form = get_form_for(request.user, pk, "change")
    if form.is_published:
        with transaction.atomic():
            Form.objects.filter(pk=form.pk).update(published_at=None)
            audit.record(audit.Action.FORM_UNPUBLISH, target=form, data={"slug": form.slug})
    messages.success(request, _("Unpublished: the form's link now shows “not found”."))
    return redirect("intake:form_detail", form.pk)


@require_GET
def form_preview(request, pk):
    form = get_form_for(request.user, pk)
    return render_form_page(request, form, AnswerForm(form), preview=True)


@require_GET
def form_qr(request, pk, image_format):
    form = get_form_for(request.user, pk)
    if image_format not in qr.FORMATS:
        raise Http404
    channel = request.GET.get("channel", "")
    url = request.build_absolute_uri(form.get_absolute_url())
    name = form.slug
    if channel in Channel.values:
        url += "?" + urllib.parse.urlencode({"channel": channel})
        name += f"-{channel}"
    content, content_type = qr.image(url, image_format)
    response = HttpResponse(content, content_type=content_type)
    disposition = "attachment" if request.GET.get("download") else "inline"
    response["Content-Disposition"] = f'{disposition}; filename="{name}-qr.{image_format}"'
    return response


# Questions -----------------------------------------------------------------------------------


def _field_changed(form, change, field, **data):
    audit.record(
        audit.Action.FORM_FIELD_CHANGE,
        target=form,
        data={"change": change, "field": field.key, **data},
    )


@require_http_methods(["GET", "POST"])
def field_create(request, pk):
    form = get_form_for(request.user, pk, "change")
    field_form = FieldForm(form, _posted(request))
    if field_form.is_valid():
        with transaction.atomic():
            Form.objects.select_for_update().filter(pk=form.pk).first()
            field = field_form.save()
            _field_changed(form, "added", field, type=field.type, target=field.target)
        messages.success(request, _("Question added."))
        return redirect(f"{form.get_builder_url()}#field-{field.pk}")
    context = {"form": form, "field_form": field_form}
    return render(request, "intake/builder/field_form.html", context)


@require_http_methods(["GET", "POST"])
def field_edit(request, pk, field_pk):
    form = get_form_for(request.user, pk, "change")
    field = _field_of(form, field_pk)
    before = _values(field, FIELD_AUDITED)
    field_form = FieldForm(form, _posted(request), instance=field)
    if field_form.is_valid():
        with transaction.atomic():
            field = field_form.save()
            changes = audit.changes(before, _values(field, FIELD_AUDITED))
            if changes:
                _field_changed(form, "changed", field, changes=changes)
        messages.success(request, _("Question saved."))
        return redirect(f"{form.get_builder_url()}#field-{field.pk}")
    context = {"form": form, "field": field, "field_form": field_form}
    return render(request, "intake/builder/field_form.html", context)


@require_http_methods(["GET", "POST"])
def field_delete(request, pk, field_pk):
    form = get_form_for(request.user, pk, "change")
    field = _field_of(form, field_pk)
    needed_by_verification = bool(form.verify) and field.target == f"customer:{form.verify}"
    if request.method == "POST":
        if needed_by_verification:
            messages.error(
                request,
                _("The form verifies what this question asks for: turn verification off first."),
            )
            return redirect("intake:form_detail", form.pk)
        with transaction.atomic():
            _field_changed(form, "deleted", field, label=field.label)
            field.delete()
        messages.success(request, _("Question deleted."))
        return redirect("intake:form_detail", form.pk)
    context = {
        "form": form,
        "field": field,
        "needed_by_verification": needed_by_verification,
        "has_answers": form.submissions.exists(),
    }
    return render(request, "intake/builder/field_delete.html", context)


@require_POST
def field_move(request, pk, field_pk):
    form = get_form_for(request.user, pk, "change")
    direction = request.POST.get("direction")
    if direction not in ("up", "down"):
        messages.error(request, _("Choose whether to move the question up or down."))
        return redirect("intake:form_detail", form.pk)
    with transaction.atomic():
        # Locking the form keeps two builders' moves from interleaving.
        Form.objects.select_for_update().filter(pk=form.pk).first()
        fields = list(form.fields.order_by("position", "id"))
        index = next((i for i, f in enumerate(fields) if f.pk == field_pk), None)
        if index is None:
            raise Http404
        other = index - 1 if direction == "up" else index + 1
        if 0 <= other < len(fields):
            fields[index], fields[other] = fields[other], fields[index]
            for position, field in enumerate(fields, start=1):
                field.position = position
            FormField.objects.bulk_update(fields, ["position"])
            _field_changed(form, "moved", fields[other], direction=direction)
    return redirect(f"{form.get_builder_url()}#field-{field_pk}")
