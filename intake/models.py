"""Forms and surveys that customers fill themselves, and what they submit.

A submission is kept as it arrived until it has been applied to a customer and any conflicting
values have been reviewed, so nothing a customer sends is ever lost.
"""

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _

from cims.ids import uuid7
from customers.fields import EncryptedCharField, EncryptedJSONField
from customers.models import Channel, Source


def in_language(chinese, english):
    """The English text for English visitors when there is one, else the Chinese."""
    if english and (get_language() or "").startswith("en"):
        return english
    return chinese


class Form(models.Model):
    class Kind(models.TextChoices):
        FORM = "form", _("Form")
        SURVEY = "survey", _("Survey")

    class Verify(models.TextChoices):
        NONE = "", _("No verification")
        EMAIL = "email", _("Verify the email address")
        PHONE = "phone", _("Verify the mobile number")

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    kind = models.CharField(_("kind"), max_length=10, choices=Kind.choices, default=Kind.FORM)
    slug = models.SlugField(
        _("address"),
        max_length=80,
        unique=True,
        help_text=_("The form is published at /f/<address>/."),
    )
    title = models.CharField(_("title"), max_length=200)
    title_en = models.CharField(_("English title"), max_length=200, blank=True)
    description = models.TextField(_("introduction"), blank=True)
    description_en = models.TextField(_("English introduction"), blank=True)
    thank_you = models.TextField(_("thank-you text"), blank=True)
    thank_you_en = models.TextField(_("English thank-you text"), blank=True)
    redirect_url = models.URLField(
        _("redirect after submitting"),
        blank=True,
        help_text=_("Instead of the thank-you text, send visitors to this address."),
    )
    verify = models.CharField(
        _("verification"), max_length=10, choices=Verify.choices, blank=True, default=""
    )
    # New customers made from this form's submissions get this source, owner and team.
    source = models.CharField(
        _("source channel"), max_length=20, choices=Source.choices, default=Source.WEB_FORM
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("owner of new customers"),
        null=True,
        blank=True,
        on_delete=models.DB_SET_NULL,
        related_name="+",
    )
    team = models.ForeignKey(
        "accounts.Team",
        verbose_name=_("team of new customers"),
        null=True,
        blank=True,
        on_delete=models.DB_SET_NULL,
        related_name="+",
    )
    embeddable = models.BooleanField(
        _("may be embedded"),
        default=False,
        help_text=_("Allow other websites to show this form in a frame."),
    )
    published_at = models.DateTimeField(_("published at"), null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        editable=False,
        on_delete=models.DB_SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now, editable=False)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("form")
        verbose_name_plural = _("forms")

    def __str__(self):
        return self.display_title

    def get_absolute_url(self):
        return reverse("intake:public_form", args=[self.slug])

    def get_builder_url(self):
        return reverse("intake:form_detail", args=[self.pk])

    @property
    def display_title(self):
        return in_language(self.title, self.title_en)

    @property
    def display_description(self):
        return in_language(self.description, self.description_en)

    @property
    def display_thank_you(self):
        return in_language(self.thank_you, self.thank_you_en)

    @property
    def is_published(self):
        return self.published_at is not None

    # The form of the staff quick-entry page (made by a migration): its questions may be edited,
    # but it is never published to the public, deleted or moved to another address.
    QUICK_ENTRY_SLUG = "quick-entry"

    @property
    def is_quick_entry(self):
        return self.slug == self.QUICK_ENTRY_SLUG


class FormField(models.Model):
    class Type(models.TextChoices):
        TEXT = "text", _("Text")
        LONG_TEXT = "long_text", _("Long text")
        EMAIL = "email", _("Email")
        PHONE = "phone", _("Mobile phone")
        NUMBER = "number", _("Number")
        DATE = "date", _("Date")
        CHOICE = "choice", _("Single choice")
        MULTI_CHOICE = "multi_choice", _("Multiple choice")
        BOOLEAN = "boolean", _("Yes/no")
        CONSENT = "consent", _("Consent checkbox")
        RATING = "rating", _("Rating 1 to 5")
        NPS = "nps", _("Recommendation 0 to 10")

    # Answers of these types may hold personal data and are stored encrypted
    # (Submission.private_answers); the others stay readable to SQL for survey results.
    PRIVATE_TYPES = (Type.TEXT, Type.LONG_TEXT, Type.EMAIL, Type.PHONE, Type.DATE)
    CHOICE_TYPES = (Type.CHOICE, Type.MULTI_CHOICE)

    # The customer fields an answer may be saved to ("customer:<name>").
    CUSTOMER_TARGETS = (
        *("display_name", "family_name", "given_name", "gender", "birthday", "email", "phone"),
        *("company", "job_title", "province", "city", "district", "street", "postcode", "notes"),
    )
    CUSTOMER, ATTRIBUTE, CONSENT = "customer", "attribute", "consent"

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    form = models.ForeignKey(
        Form, verbose_name=_("form"), on_delete=models.DB_CASCADE, related_name="fields"
    )
    key = models.SlugField(
        _("key"), max_length=50, help_text=_("The answer's name in exports and the API.")
    )
    type = models.CharField(_("type"), max_length=20, choices=Type.choices, default=Type.TEXT)
    label = models.CharField(_("label"), max_length=500)
    label_en = models.CharField(_("English label"), max_length=500, blank=True)
    help_text = models.CharField(_("help text"), max_length=500, blank=True)
    help_text_en = models.CharField(_("English help text"), max_length=500, blank=True)
    required = models.BooleanField(_("required"), default=False)
    # [{"value": "gold", "label": "金卡", "label_en": "Gold"}, ...]
    choices = models.JSONField(_("choices"), default=list, blank=True)
    # Where the answer goes: "" (kept as an answer only), "customer:<field name>",
    # "attribute:<custom field key>" or "consent:<purpose>".
    target = models.CharField(_("saved to"), max_length=100, blank=True)
    # A consent checkbox's label is its exact wording; a new wording is a new version, and the
    # consent records the version the customer saw.
    wording_version = models.PositiveIntegerField(_("wording version"), default=1)
    position = models.PositiveIntegerField(_("position"), default=0)

    class Meta:
        ordering = ["position", "id"]
        verbose_name = _("form field")
        verbose_name_plural = _("form fields")
        constraints = [
            models.UniqueConstraint(fields=["form", "key"], name="formfield_unique_key"),
        ]

    def __str__(self):
        return self.display_label

    @property
    def display_label(self):
        return in_language(self.label, self.label_en)

    @property
    def display_help_text(self):
        return in_language(self.help_text, self.help_text_en)

    def display_choices(self):
        return [(c["value"], in_language(c["label"], c.get("label_en", ""))) for c in self.choices]

    @property
    def is_private(self):
        return self.type in self.PRIVATE_TYPES

    @property
    def target_kind(self):
        """ "customer", "attribute", "consent", or "" for an answer kept only as an answer."""
        return self.target.partition(":")[0] if self.target else ""

    @property
    def target_name(self):
        """The customer field, custom field key or consent purpose the answer is saved to."""
        return self.target.partition(":")[2]


class Submission(models.Model):
    class State(models.TextChoices):
        PENDING = "pending", _("Waiting for verification")
        RECEIVED = "received", _("Received")
        REVIEW = "review", _("Waiting for review")
        DONE = "done", _("Processed")

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    # A form with submissions is unpublished, not deleted: the database refuses the delete.
    form = models.ForeignKey(
        Form, verbose_name=_("form"), on_delete=models.DO_NOTHING, related_name="submissions"
    )
    state = models.CharField(
        _("state"), max_length=10, choices=State.choices, default=State.RECEIVED
    )
    # Structured answers (choices, ratings, numbers, yes/no, consents) by field key, readable to
    # SQL for results; free text, contact details and dates encrypted in private_answers.
    answers = models.JSONField(_("answers"), default=dict, blank=True)
    private_answers = EncryptedJSONField(_("private answers"), default=dict, blank=True)
    customer = models.ForeignKey(
        "customers.Customer",
        verbose_name=_("customer"),
        null=True,
        blank=True,
        on_delete=models.DB_SET_NULL,
        related_name="submissions",
    )
    channel = models.CharField(
        _("channel"), max_length=20, choices=Channel.choices, default=Channel.WEBSITE
    )
    event = models.CharField(_("event"), max_length=100, blank=True)
    language = models.CharField(_("language"), max_length=10, blank=True)
    # Staff who typed it in on the customer's behalf (a paper questionnaire, a store visit).
    entered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("entered by"),
        null=True,
        blank=True,
        on_delete=models.DB_SET_NULL,
        related_name="+",
    )
    # Made by the browser for entries queued offline, so a resent entry is stored once.
    client_key = models.UUIDField(null=True, blank=True, unique=True, editable=False)
    ip_address = models.GenericIPAddressField(_("address"), null=True, blank=True)
    verified_at = models.DateTimeField(_("verified at"), null=True, blank=True)
    created_at = models.DateTimeField(_("submitted at"), default=timezone.now, editable=False)
    processed_at = models.DateTimeField(_("processed at"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("submission")
        verbose_name_plural = _("submissions")
        permissions = [
            ("review_submission", _("Can review submitted changes to customers")),
        ]
        indexes = [
            models.Index(fields=["form", "-created_at", "-id"], name="submission_form_idx"),
            models.Index(
                fields=["created_at"],
                condition=models.Q(state="pending"),
                name="submission_pending_idx",
            ),
            models.Index(
                fields=["state", "-created_at"],
                condition=models.Q(state__in=["received", "review"]),
                name="submission_open_idx",
            ),
            models.Index(fields=["customer"], name="submission_customer_idx"),
        ]

    def __str__(self):
        return f"{self.form} · {self.created_at:%Y-%m-%d %H:%M}"

    def answer(self, key):
        """The answer to the field `key`, wherever it is stored."""
        if key in self.answers:
            return self.answers[key]
        return self.private_answers.get(key)


class VerificationCode(models.Model):
    """The code sent to verify a pending submission's email or mobile number."""

    class Channel(models.TextChoices):
        EMAIL = "email", _("Email")
        SMS = "sms", _("SMS")

    submission = models.OneToOneField(
        Submission, on_delete=models.DB_CASCADE, primary_key=True, related_name="verification"
    )
    channel = models.CharField(max_length=10, choices=Channel.choices)
    # Stored hashed; the email link carries a separate random token, also hashed.
    code_hash = models.CharField(max_length=128)
    token_hash = models.CharField(max_length=128, blank=True)
    expires_at = models.DateTimeField()
    attempts = models.PositiveSmallIntegerField(default=0)
    # When a code was last sent or tried to be (the resend cool-down runs from it), how many
    # messages the provider took, and why the last one failed, if it did.
    sent_at = models.DateTimeField(null=True, blank=True)
    send_count = models.PositiveSmallIntegerField(default=0)
    last_error = models.CharField(max_length=500, blank=True)
    # When a worker will try again after a failed send; None when none is planned.
    retry_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("verification code")
        verbose_name_plural = _("verification codes")
        indexes = [
            models.Index(
                fields=["token_hash"],
                condition=~models.Q(token_hash=""),
                name="verification_token_idx",
            ),
        ]

    def __str__(self):
        return f"{self.get_channel_display()} · {self.submission_id}"


class ProposedChange(models.Model):
    """A submitted value that differs from what is on record, waiting for staff to decide."""

    class Decision(models.TextChoices):
        ACCEPTED = "accepted", _("Accepted")
        REJECTED = "rejected", _("Rejected")

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    submission = models.ForeignKey(
        Submission, on_delete=models.DB_CASCADE, related_name="proposed_changes"
    )
    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.DB_CASCADE, related_name="proposed_changes"
    )
    # A Customer field name, or "attribute:<key>".
    field = models.CharField(_("field"), max_length=100)
    # The submitted email or phone already belongs to this other customer: accepting the value
    # would need the two merged first.
    conflicting_customer = models.ForeignKey(
        "customers.Customer",
        verbose_name=_("also belongs to"),
        null=True,
        blank=True,
        on_delete=models.DB_SET_NULL,
        related_name="+",
    )
    # JSON text of the value on record when the submission arrived and of the submitted one,
    # encrypted as the customer's own values are.
    current_value = EncryptedCharField(_("on record"), max_length=5000, blank=True)
    proposed_value = EncryptedCharField(_("submitted"), max_length=5000, blank=True)
    decision = models.CharField(
        _("decision"), max_length=10, choices=Decision.choices, blank=True, default=""
    )
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DB_SET_NULL,
        related_name="+",
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name = _("proposed change")
        verbose_name_plural = _("proposed changes")
        indexes = [
            models.Index(
                fields=["created_at"],
                condition=models.Q(decision=""),
                name="proposedchange_open_idx",
            ),
            models.Index(fields=["customer"], name="proposedchange_customer_idx"),
        ]

    def __str__(self):
        return self.field
