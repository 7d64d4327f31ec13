"""Staff entering customers: quick entry in stores and at expos (also offline), and forms filled
in on a customer's behalf (a paper questionnaire typed in).

Quick entry answers a plain form POST with a redirect, and a POST from its script
(static/js/quick-entry.js, Accept: application/json) with JSON: 201 for a new entry, 200 for
an entry whose key was received before, 400 with the errors of each field, 409 when the page
was opened by another user than the one signed in now.
"""

import functools
import json
import uuid
from urllib.parse import urlencode

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.contrib.staticfiles import finders
from django.contrib.staticfiles.storage import staticfiles_storage
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.templatetags.static import static
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods

from accounts.audit import client_ip
from accounts.permissions import can_create_customer, get_customer_for
from customers.models import Channel
from intake.answer_forms import AnswerForm
from intake.models import Form, FormField, Submission
from intake.services import receive_submission

Type = FormField.Type

# The form behind quick entry, created by migration 0002; administrators edit its questions.
QUICK_ENTRY_SLUG = Form.QUICK_ENTRY_SLUG
QUICK_ENTRY_CHANNELS = (Channel.STORE, Channel.EXPO)
FILL_CHANNELS = (Channel.STORE, Channel.EXPO, Channel.PHONE, Channel.OTHER)
# Inputs a phone's keyboard should suit.
INPUT_MODES = {Type.PHONE: "tel", Type.EMAIL: "email", Type.NUMBER: "decimal"}
FOCUSABLE_TYPES = (Type.TEXT, Type.EMAIL, Type.PHONE, Type.NUMBER)


class EntryContextForm(forms.Form):
    """Where an entry was made, and the key that makes a resent entry count once."""

    channel = forms.ChoiceField(label=gettext_lazy("Channel"))
    event = forms.CharField(
        label=gettext_lazy("Event"),
        max_length=100,
        required=False,
        help_text=gettext_lazy("For example the name of the store or the expo."),
    )
    client_key = forms.UUIDField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args, channels, **kwargs):
        super().__init__(*args, prefix="entry", **kwargs)
        self.fields["channel"].choices = [(c.value, c.label) for c in channels]


class StaffAnswerForm(AnswerForm):
    """A form's questions answered by staff for a customer.

    The answers are the customer's, not the user's: the browser must neither fill in the user's
    own details nor keep the customer's to offer them to the next user of a shared device.
    """

    sends_codes = False

    def __init__(self, form, *args, **kwargs):
        super().__init__(form, *args, **kwargs)
        for field in self.fields.values():
            field.widget.attrs["autocomplete"] = "off"


class QuickEntryForm(StaffAnswerForm):
    """The quick-entry questions, laid out for a phone, asking for a way to reach the customer."""

    def __init__(self, form, *args, **kwargs):
        super().__init__(form, *args, **kwargs)
        focused = False
        for field in self.form_fields:
            widget = self.fields[field.key].widget
            if field.type in INPUT_MODES:
                widget.attrs["inputmode"] = INPUT_MODES[field.type]
            if field.type == Type.EMAIL:
                widget.attrs.update(autocapitalize="off", spellcheck="false")
            if field.type in FOCUSABLE_TYPES:
                widget.attrs["enterkeyhint"] = "send"
                if not focused:
                    widget.attrs["autofocus"] = True
                    focused = True

    def clean(self):
        cleaned = super().clean()
        contacts = [f.key for f in self.form_fields if f.type in (Type.PHONE, Type.EMAIL)]
        typed_wrong = any(key in self.errors for key in contacts)
        if contacts and not typed_wrong and not any(cleaned.get(key) for key in contacts):
            raise ValidationError(
                _("Enter a mobile number or an email address, so that the customer can be found.")
            )
        return cleaned

    def name_key(self):
        """The key of the question that names the customer: the one saved as their name, or
        else the first text question."""
        texts = [f for f in self.form_fields if f.type == Type.TEXT]
        named = [f for f in texts if f.target == "customer:display_name"] or texts
        return named[0].key if named else None

    def customer_name(self):
        """What the customer is called in this entry, for the "Saved" note."""
        key = self.name_key()
        return (self.cleaned_data.get(key) or "") if key else ""


def _may_quick_enter(user):
    return user.has_perm("intake.add_submission") and can_create_customer(user)


def _quick_entry_form():
    form = Form.objects.filter(slug=QUICK_ENTRY_SLUG).prefetch_related("fields").first()
    if form is None:
        raise Http404(_("The quick-entry form has been removed."))
    return form


def _wants_json(request):
    return "application/json" in request.headers.get("Accept", "")


@require_http_methods(["GET", "POST"])
def quick_entry(request):
    if not _may_quick_enter(request.user):
        raise PermissionDenied
    form = _quick_entry_form()
    if request.method == "POST":
        return _quick_entry_post(request, form)
    channel = request.GET.get("entry-channel")
    context = EntryContextForm(
        channels=QUICK_ENTRY_CHANNELS,
        initial={
            "channel": channel if channel in QUICK_ENTRY_CHANNELS else Channel.STORE,
            "event": request.GET.get("entry-event", "")[:100],
            "client_key": uuid.uuid4(),
        },
    )
    return _render_quick_entry(request, form, QuickEntryForm(form), context)


def _quick_entry_post(request, form):
    page_user = request.headers.get("X-Entry-User")
    if page_user is not None and page_user != str(request.user.pk):
        # The entries waiting in a page belong to the user who opened it; sent with the session
        # of another user who signed in since on this device, they would be recorded as theirs.
        error = _("You are signed in as someone else. Reload the page to enter customers.")
        return JsonResponse(
            {"errors": [{"field": "", "label": "", "messages": [error]}]}, status=409
        )
    context = EntryContextForm(request.POST, channels=QUICK_ENTRY_CHANNELS)
    answers = QuickEntryForm(form, request.POST)
    if context.is_valid() and (key := context.cleaned_data["client_key"]):
        earlier = Submission.objects.filter(client_key=key).first()
        if earlier is not None:
            return _already_received(request, form, context, earlier)
    if not (context.is_valid() and answers.is_valid()):
        if _wants_json(request):
            return JsonResponse({"errors": _errors(answers, context)}, status=400)
        context = _fresh_key(context)
        return _render_quick_entry(request, form, answers, context, status=400)
    submission, created = _receive(
        request,
        answers,
        channel=context.cleaned_data["channel"],
        event=context.cleaned_data["event"],
        client_key=context.cleaned_data["client_key"],
    )
    name = answers.customer_name()
    note = _("Saved: %(name)s") % {"name": name} if name else _("Saved.")
    if _wants_json(request):
        return JsonResponse(
            {"key": str(submission.client_key or ""), "name": name, "message": note},
            status=201 if created else 200,
        )
    messages.success(request, note)
    return _back_to_quick_entry(context)


def _already_received(request, form, context, earlier):
    """The answer to an entry sent again: the same as the first time, once stored."""
    if earlier.entered_by_id != request.user.pk or earlier.form_id != form.pk:
        # Keys are random: another user's key is not a resend, and says nothing about them.
        error = _("This entry cannot be saved. Reload the page and enter it again.")
        if _wants_json(request):
            return JsonResponse(
                {"errors": [{"field": "", "label": "", "messages": [error]}]}, status=400
            )
        messages.error(request, error)
        return _back_to_quick_entry(context)
    if _wants_json(request):
        return JsonResponse(
            {"key": str(earlier.client_key), "name": "", "message": _("Already received.")},
            status=200,
        )
    messages.info(request, _("This entry was already received."))
    return _back_to_quick_entry(context)


def _back_to_quick_entry(context):
    query = {
        "entry-channel": context.cleaned_data.get("channel", ""),
        "entry-event": context.cleaned_data.get("event", ""),
    }
    return redirect(reverse("intake:quick_entry") + "?" + urlencode(query))


def _fresh_key(context):
    """A form shown again keeps its key: the entry was not stored, so it may use it."""
    if not context.data.get("entry-client_key"):
        data = context.data.copy()
        data["entry-client_key"] = str(uuid.uuid4())
        return EntryContextForm(data, channels=QUICK_ENTRY_CHANNELS)
    return context


def _errors(answers, context):
    """Field errors as [{field, label, messages}], the form's own errors with field "" ."""
    errors = []
    for bound in (answers, context):
        for name, messages_ in bound.errors.items():
            label = "" if name == "__all__" else str(bound.fields[name].label or name)
            errors.append(
                {
                    "field": "" if name == "__all__" else bound.add_prefix(name),
                    "label": label,
                    "messages": [str(m) for m in messages_],
                }
            )
    return errors


def _receive(request, answer_form, *, channel, event, client_key, customer=None):
    """Store the entry once: (submission, created). Two requests with one key racing each
    other both get the submission that won; the unique key decides."""
    try:
        with transaction.atomic():
            submission = receive_submission(
                answer_form,
                channel=channel,
                event=event,
                entered_by=request.user,
                client_key=client_key,
                ip_address=client_ip(request),
                language=getattr(request, "LANGUAGE_CODE", ""),
                customer=customer,
            )
    except IntegrityError:
        submission = client_key and Submission.objects.filter(client_key=client_key).first()
        if not submission:
            raise
        return submission, False
    return submission, True


def _render_quick_entry(request, form, answers, context, status=200):
    return render(
        request,
        "intake/entry/quick_entry.html",
        {
            "built_form": form,
            "answers": answers,
            "entry": context,
            "name_key": answers.name_key() or "",
            "queue_limit": settings.INTAKE_QUICK_ENTRY_QUEUE_LIMIT,
            "channel_labels": json.dumps({c.value: str(c.label) for c in QUICK_ENTRY_CHANNELS}),
        },
        status=status,
    )


@login_not_required
@require_GET
def quick_entry_worker(request):
    """The service worker that keeps the quick-entry page working offline.

    Served from /entry/ so that its scope is the quick-entry page; the static files it keeps
    are named here, as the static storage names them (with their hashes in production).
    """
    precache = [
        static(path)
        for path in (
            "css/cims.css",
            "js/theme.js",
            "js/app.js",
            "js/quick-entry.js",
            "vendor/htmx.min.js",
            "img/favicon.svg",
        )
    ]
    head = "const PAGE = {};\nconst PRECACHE = {};\n".format(
        json.dumps(reverse("intake:quick_entry")), json.dumps(precache)
    )
    response = HttpResponse(head + _worker_source(), content_type="text/javascript")
    # Browsers check for a new worker on each visit; never let a cache answer for it.
    response["Cache-Control"] = "no-cache"
    return response


@functools.cache
def _worker_source():
    # From the source tree where there is one, else from the collected static files.
    path = finders.find("js/entry-sw.js")
    if path:
        with open(path, encoding="utf-8") as file:
            return file.read()
    with staticfiles_storage.open("js/entry-sw.js") as file:
        return file.read().decode("utf-8")


# Filling in a form on a customer's behalf ------------------------------------------------------


def _fillable_forms():
    return Form.objects.filter(published_at__isnull=False)


@require_GET
def fill_choose(request, pk):
    customer = get_customer_for(request.user, pk, "change")
    if not request.user.has_perm("intake.add_submission"):
        raise PermissionDenied
    forms_ = _fillable_forms().order_by("kind", "title")
    return render(request, "intake/entry/fill_choose.html", {"customer": customer, "forms": forms_})


@require_http_methods(["GET", "POST"])
def fill_for_customer(request, pk, slug):
    customer = get_customer_for(request.user, pk, "change")
    if not request.user.has_perm("intake.add_submission"):
        raise PermissionDenied
    form = get_object_or_404(_fillable_forms().prefetch_related("fields"), slug=slug)
    answers = StaffAnswerForm(form, request.POST or None)
    context = EntryContextForm(
        request.POST or None,
        channels=FILL_CHANNELS,
        initial={"channel": Channel.STORE, "client_key": uuid.uuid4()},
    )
    if request.method == "POST":
        if context.is_valid() and (key := context.cleaned_data["client_key"]):
            if Submission.objects.filter(client_key=key, customer=customer).exists():
                messages.info(request, _("These answers were already saved."))
                return redirect(customer)
        if context.is_valid() and answers.is_valid():
            _receive(
                request,
                answers,
                channel=context.cleaned_data["channel"],
                event=context.cleaned_data["event"],
                client_key=context.cleaned_data["client_key"],
                customer=customer,
            )
            messages.success(
                request,
                _("The answers to “%(form)s” were saved for %(customer)s.")
                % {"form": form.display_title, "customer": customer.display_name},
            )
            return redirect(customer)
    return render(
        request,
        "intake/entry/fill_for_customer.html",
        {"customer": customer, "built_form": form, "answers": answers, "entry": context},
        status=400 if request.method == "POST" else 200,
    )
