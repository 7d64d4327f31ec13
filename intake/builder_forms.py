"""Forms of the form builder: a form's settings and its questions.

A question's type must fit where its answer is saved (`target`): an email address can only come
from an email question, a custom attribute only from a question of its type, a consent only
from a consent checkbox. Checking that here, when the form is built, is what lets submissions
be applied to customers without surprises later.
"""

import re

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.utils import translation
from django.utils.text import capfirst, slugify
from django.utils.translation import gettext_lazy as _
from pypinyin import lazy_pinyin

from accounts.permissions import assignable_owners, assignable_teams
from customers.models import ConsentPurpose, Customer, CustomField, Gender
from intake.models import Form, FormField

Type = FormField.Type
KEY_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")
MAX_CHOICES = 100

# Customer fields and the question types whose answers fit them.
CUSTOMER_TARGET_TYPES = {
    "email": {Type.EMAIL},
    "phone": {Type.PHONE},
    "birthday": {Type.DATE},
    "gender": {Type.CHOICE},
    "notes": {Type.TEXT, Type.LONG_TEXT},
    **{
        name: {Type.TEXT}
        for name in FormField.CUSTOMER_TARGETS
        if name not in ("email", "phone", "birthday", "gender", "notes")
    },
}
# Custom attribute types and the question types whose answers fit them.
ATTRIBUTE_TARGET_TYPES = {
    CustomField.Type.TEXT: {Type.TEXT},
    CustomField.Type.NUMBER: {Type.NUMBER, Type.RATING, Type.NPS},
    CustomField.Type.DATE: {Type.DATE},
    CustomField.Type.CHOICE: {Type.CHOICE},
    CustomField.Type.MULTI_CHOICE: {Type.MULTI_CHOICE},
    CustomField.Type.BOOLEAN: {Type.BOOLEAN},
}
# Consent to marketing must be free to refuse, so these checkboxes cannot be required.
MARKETING_PURPOSES = {
    ConsentPurpose.MARKETING_EMAIL,
    ConsentPurpose.SMS,
    ConsentPurpose.PHONE,
}
# Verification needs the address or number it sends the code to.
VERIFY_TARGETS = {Form.Verify.EMAIL: "customer:email", Form.Verify.PHONE: "customer:phone"}


def suggest_slug(text, taken=(), max_length=50, separator="_"):
    """A lower-case ASCII name made from `text`, Chinese written in pinyin, not in `taken`."""
    words = " ".join(lazy_pinyin(text or ""))
    base = slugify(words).replace("-", " ").replace("_", " ").split()
    base = separator.join(base)[:max_length].strip(separator)
    if not base or not base[0].isalpha():
        base = f"q{separator}{base}".strip(separator)
    candidate, number = base, 2
    while candidate in taken:
        suffix = f"{separator}{number}"
        candidate = base[: max_length - len(suffix)] + suffix
        number += 1
    return candidate


def choices_as_text(choices):
    lines = []
    for choice in choices:
        parts = [choice["value"], choice["label"]]
        if choice.get("label_en"):
            parts.append(choice["label_en"])
        lines.append(" | ".join(parts))
    return "\n".join(lines)


def parse_choices(text):
    """Options typed one a line as "value | 中文 | English"; "value | 中文" and a lone "中文"
    (used as value and label) are accepted too."""
    choices, seen = [], set()
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = [part.strip() for part in line.split("|")]
        if len(parts) > 3:
            raise ValidationError(
                _("Line %(line)d has more than three parts: write value | 中文 | English."),
                params={"line": number},
            )
        value, label, label_en = (parts + ["", ""])[:3] if len(parts) > 1 else parts * 2 + [""]
        if not value or not label:
            raise ValidationError(
                _("Line %(line)d needs a value and a label."), params={"line": number}
            )
        if len(value) > 100 or len(label) > 200 or len(label_en) > 200:
            raise ValidationError(
                _("Line %(line)d is too long: values up to 100 characters, labels up to 200."),
                params={"line": number},
            )
        if value in seen:
            raise ValidationError(
                _("Line %(line)d repeats the value “%(value)s”: each option needs its own."),
                params={"line": number, "value": value},
            )
        seen.add(value)
        choices.append({"value": value, "label": label, "label_en": label_en})
    if len(choices) > MAX_CHOICES:
        raise ValidationError(_("At most %(max)d options."), params={"max": MAX_CHOICES})
    return choices


def _both_languages(label):
    with translation.override("zh-hans"):
        chinese = str(label)
    with translation.override("en"):
        english = str(label)
    return chinese, english


def default_choices(target, custom_field=None):
    """The options a choice question saved to `target` offers when the builder gives none."""
    if target == "customer:gender":
        return [
            {"value": value, "label": zh, "label_en": en}
            for value, label in Gender.choices
            if value
            for zh, en in [_both_languages(label)]
        ]
    if custom_field is not None and custom_field.choices:
        return [{"value": c, "label": c, "label_en": ""} for c in custom_field.choices]
    return []


def target_choices():
    """Where an answer may go, grouped for a <select>."""
    customer = [
        (f"customer:{name}", capfirst(Customer._meta.get_field(name).verbose_name))
        for name in FormField.CUSTOMER_TARGETS
    ]
    attributes = [
        (f"attribute:{field.key}", field.display_label)
        for field in CustomField.objects.filter(active=True)
    ]
    consents = [(f"consent:{value}", label) for value, label in ConsentPurpose.choices]
    groups = [("", _("Answer only: not saved to the customer")), (_("Customer"), customer)]
    if attributes:
        groups.append((_("Custom attribute"), attributes))
    groups.append((_("Consent"), consents))
    return groups


class FormSettingsForm(forms.ModelForm):
    """A form's texts, address and what happens with its submissions."""

    class Meta:
        model = Form
        fields = [
            "kind",
            "title",
            "title_en",
            "description",
            "description_en",
            "slug",
            "thank_you",
            "thank_you_en",
            "redirect_url",
            "verify",
            "source",
            "owner",
            "team",
            "embeddable",
        ]
        widgets = {
            "description": forms.Textarea(attrs={"rows": 3}),
            "description_en": forms.Textarea(attrs={"rows": 3}),
            "thank_you": forms.Textarea(attrs={"rows": 2}),
            "thank_you_en": forms.Textarea(attrs={"rows": 2}),
            "redirect_url": forms.URLInput(attrs={"placeholder": "https://"}),
        }
        help_texts = {
            "slug": _(
                "Letters, digits, hyphens and underscores. Leave empty to make one from the "
                "title. Changing it breaks printed QR codes and links to the old address."
            ),
        }

    def __init__(self, user, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["slug"].required = False
        if self.instance.is_quick_entry:
            self.fields["slug"].disabled = True
            self.fields["slug"].help_text = _("The quick-entry page finds its form here.")
        self.fields["owner"].queryset = assignable_owners(user, self.instance.owner_id)
        self.fields["team"].queryset = assignable_teams(user, self.instance.team_id)
        self.fields["redirect_url"].validators = [URLValidator(schemes=["http", "https"])]
        # Verification is offered only when the form asks for what the code is sent to.
        targets = set()
        if not self.instance._state.adding:
            targets = set(self.instance.fields.values_list("target", flat=True))
        self.fields["verify"] = forms.ChoiceField(
            label=capfirst(Form._meta.get_field("verify").verbose_name),
            choices=[
                (value, label)
                for value, label in Form.Verify.choices
                if not value or VERIFY_TARGETS[value] in targets
            ],
            required=False,
            help_text=_(
                "Email or mobile verification appears once the form has a question saved to "
                "the customer's email or mobile number."
            ),
        )

    def clean_slug(self):
        slug = self.cleaned_data["slug"]
        if slug:
            return slug
        title = self.cleaned_data.get("title_en") or self.cleaned_data.get("title") or ""
        base = suggest_slug(title, max_length=70, separator="-")
        taken = set(
            Form.objects.exclude(pk=self.instance.pk)
            .filter(slug__startswith=base)
            .values_list("slug", flat=True)
        )
        return suggest_slug(base, taken, max_length=80, separator="-")

    def clean_redirect_url(self):
        return self.cleaned_data["redirect_url"].strip()


class FieldForm(forms.ModelForm):
    """One question: its type, texts, options and where the answer is saved."""

    choices_text = forms.CharField(
        label=_("Options"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 5, "placeholder": "gold | 金卡 | Gold"}),
        help_text=_(
            "Single and multiple choice only: one option a line, as value | 中文 | English. "
            "The value is what is stored; leave the box empty for a question saved to gender "
            "or to a custom attribute with options to offer those options."
        ),
    )

    class Meta:
        model = FormField
        fields = [
            "type",
            "label",
            "label_en",
            "help_text",
            "help_text_en",
            "required",
            "target",
            "key",
        ]
        widgets = {
            "label": forms.Textarea(attrs={"rows": 2}),
            "label_en": forms.Textarea(attrs={"rows": 2}),
        }
        help_texts = {
            "label": _("For a consent checkbox, the exact wording the customer agrees to."),
            "key": _(
                "The answer's name in exports: lower-case letters, digits and underscores. "
                "Leave empty to make one from the label."
            ),
        }

    def __init__(self, built_form, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.built_form = built_form
        self.fields["key"].required = False
        self.fields["target"] = forms.ChoiceField(
            label=capfirst(FormField._meta.get_field("target").verbose_name),
            choices=target_choices(),
            required=False,
        )
        self.is_new = self.instance._state.adding
        if not self.is_new:
            self.initial["choices_text"] = choices_as_text(self.instance.choices)
        self.has_answers = built_form.submissions.exists()
        if self.has_answers and not self.is_new:
            # Answers are stored by key and read by type: changing either would orphan them.
            for name in ("key", "type"):
                self.fields[name].disabled = True
                self.fields[name].help_text = _(
                    "Fixed once answers were received; add a new question instead."
                )

    def _siblings(self):
        return self.built_form.fields.exclude(pk=self.instance.pk)

    def clean_key(self):
        key = self.cleaned_data.get("key") or ""
        if not key:
            return key
        if not KEY_PATTERN.match(key):
            raise ValidationError(
                _("Start with a letter; use lower-case letters, digits and underscores only.")
            )
        if self._siblings().filter(key=key).exists():
            raise ValidationError(_("Another question of this form has this key."))
        return key

    def clean(self):
        cleaned = super().clean()
        if self.is_new and self.built_form.fields.count() >= (settings.INTAKE_MAX_FIELDS_PER_FORM):
            raise ValidationError(
                _("A form can have at most %(max)d questions."),
                params={"max": settings.INTAKE_MAX_FIELDS_PER_FORM},
            )
        type_, target = cleaned.get("type"), cleaned.get("target", "")
        if not type_:
            return cleaned
        if "key" in cleaned and not cleaned["key"]:
            label = cleaned.get("label_en") or cleaned.get("label") or ""
            cleaned["key"] = suggest_slug(
                label, set(self._siblings().values_list("key", flat=True))
            )
        custom_field = self._check_target(type_, target)
        self._check_choices(type_, target, custom_field)
        self._check_verification(type_, target)
        purpose = target.partition(":")[2] if target.startswith("consent:") else None
        if cleaned.get("required") and purpose in MARKETING_PURPOSES:
            self.add_error(
                "required",
                _("Consent to marketing must be optional: customers must be free to refuse it."),
            )
        return cleaned

    def _check_target(self, type_, target):
        """Add an error when the type does not fit the target; return the target's custom
        field, if any."""
        if not target:
            return None
        kind, _sep, name = target.partition(":")
        custom_field = None
        if kind == FormField.CUSTOMER:
            allowed = CUSTOMER_TARGET_TYPES[name]
        elif kind == FormField.ATTRIBUTE:
            custom_field = CustomField.objects.get(key=name)
            allowed = ATTRIBUTE_TARGET_TYPES[custom_field.type]
        else:
            allowed = {Type.CONSENT}
        if type_ not in allowed:
            self.add_error(
                "target",
                _("An answer saved here must come from a question of type %(types)s.")
                % {"types": _(" or ").join(str(t.label) for t in Type if t in allowed)},
            )
        if self._siblings().filter(target=target).exists():
            self.add_error("target", _("Another question of this form is already saved here."))
        return custom_field

    def _check_choices(self, type_, target, custom_field):
        if type_ not in FormField.CHOICE_TYPES:
            self.instance.choices = []
            return
        try:
            choices = parse_choices(self.cleaned_data.get("choices_text", ""))
        except ValidationError as error:
            self.add_error("choices_text", error)
            return
        if not choices:
            choices = default_choices(target, custom_field)
        if not choices:
            self.add_error("choices_text", _("Give at least one option."))
            return
        values = {c["value"] for c in choices}
        if target == "customer:gender":
            allowed = set(Gender.values) - {""}
        elif custom_field is not None:
            allowed = set(custom_field.choices)
        else:
            allowed = values
        if values - allowed:
            self.add_error(
                "choices_text",
                _(
                    "These values are not options of where the answer is saved: %(values)s. Use: "
                    "%(allowed)s."
                )
                % {
                    "values": ", ".join(sorted(values - allowed)),
                    "allowed": ", ".join(sorted(allowed)),
                },
            )
            return
        self.instance.choices = choices

    def _check_verification(self, type_, target):
        verify = self.built_form.verify
        needed = VERIFY_TARGETS.get(verify)
        if needed and self.instance.target == needed and (target != needed):
            self.add_error(
                "target",
                _(
                    "The form verifies what is given here: turn verification off in the form's "
                    "settings first."
                ),
            )

    def save(self, commit=True):
        field = self.instance
        if (
            not self.is_new
            and field.type == Type.CONSENT
            and {"label", "label_en"} & set(self.changed_data)
        ):
            # The consent records the wording the customer saw: new words, new version.
            field.wording_version += 1
        if self.is_new:
            field.form = self.built_form
            last = self.built_form.fields.order_by("-position").values_list("position", flat=True)
            field.position = (last.first() or 0) + 1
        return super().save(commit=commit)
