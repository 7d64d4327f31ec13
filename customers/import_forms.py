from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.uploadhandler import SkipFile, TemporaryFileUploadHandler
from django.template.defaultfilters import filesizeformat
from django.utils.translation import gettext_lazy as _

from customers.import_fields import target_choices
from customers.models import CustomerImport

# Multipart framing around the file: boundaries, headers and the CSRF token.
UPLOAD_OVERHEAD = 64 * 1024
NAME_FIELDS = {"display_name", "family_name", "given_name"}
KEY_FIELDS = {"email", "phone", "external_id"}


def too_large_message():
    return _("The file is larger than %(max)s. Split it into smaller files.") % {
        "max": filesizeformat(settings.IMPORT_MAX_BYTES)
    }


class LimitedUploadHandler(TemporaryFileUploadHandler):
    """Writes the upload to a temporary file and gives up once it passes IMPORT_MAX_BYTES.

    The view refuses a request whose declared length is too large before reading it; this
    catches a body sent without a length, or with a false one.
    """

    too_large = False

    def new_file(self, *args, **kwargs):
        self.received = 0
        super().new_file(*args, **kwargs)

    def receive_data_chunk(self, raw_data, start):
        self.received += len(raw_data)
        if self.received > settings.IMPORT_MAX_BYTES:
            self.too_large = True
            self.file.close()
            raise SkipFile
        return super().receive_data_chunk(raw_data, start)


class UploadForm(forms.Form):
    file = forms.FileField(
        label=_("File"),
        help_text=_("CSV (UTF-8 or GBK, comma, semicolon or tab separated) or Excel .xlsx."),
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,.txt,.xlsx"}),
    )

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > settings.IMPORT_MAX_BYTES:
            raise ValidationError(too_large_message())
        if not upload.name.lower().endswith((".csv", ".txt", ".tsv", ".xlsx", ".xls")):
            raise ValidationError(_("Choose a .csv or .xlsx file."))
        return upload


class MappingForm(forms.Form):
    """Which customer field each column of the file goes to, and what to do with known ones."""

    on_duplicate = forms.ChoiceField(
        label=_("Customers already known (same email, mobile number or external ID)"),
        choices=CustomerImport.OnDuplicate.choices,
        widget=forms.RadioSelect,
        initial=CustomerImport.OnDuplicate.SKIP,
    )
    save_as = forms.CharField(
        label=_("Save this mapping as"),
        max_length=100,
        required=False,
        help_text=_("Give it a name to use it again for files with the same columns."),
    )

    def __init__(self, *args, job, custom_fields, suggested, **kwargs):
        super().__init__(*args, **kwargs)
        self.job = job
        choices = [("", _("— do not import —")), *target_choices(custom_fields)]
        self.columns = []
        for number, header in enumerate(job.headers):
            name = f"column_{number}"
            self.fields[name] = forms.ChoiceField(
                label=header or _("Column %(number)d") % {"number": number + 1},
                choices=choices,
                required=False,
                initial=suggested.get(number, ""),
            )
            samples = [row[number] for row in job.sample if number < len(row) and row[number]]
            self.columns.append((self[name], samples[:3]))
        self.fields["on_duplicate"].initial = job.on_duplicate

    def clean(self):
        cleaned = super().clean()
        mapping, seen = {}, {}
        for number in range(len(self.job.headers)):
            target = cleaned.get(f"column_{number}")
            if not target:
                continue
            if target in seen:
                self.add_error(
                    f"column_{number}",
                    _("Another column (%(other)s) already goes into this field.")
                    % {"other": self.job.headers[seen[target]]},
                )
            seen[target] = number
            mapping[str(number)] = target
        if not mapping:
            raise ValidationError(_("Choose a field for at least one column."))
        targets = set(mapping.values())
        if not targets & (NAME_FIELDS | KEY_FIELDS):
            raise ValidationError(
                _(
                    "Map a name column (or family and given names) to create customers, or an "
                    "email, mobile number or external ID column to update them."
                )
            )
        cleaned["mapping"] = mapping
        return cleaned

    def saved_columns(self):
        """{header key: field} for an ImportMapping."""
        from customers.import_fields import header_key

        return {
            header_key(self.job.headers[int(number)]): target
            for number, target in self.cleaned_data["mapping"].items()
        }


class CheckForm(forms.Form):
    """The preview's choice of what to do with known customers."""

    on_duplicate = forms.ChoiceField(
        label=_("Customers already known"),
        choices=CustomerImport.OnDuplicate.choices,
        widget=forms.RadioSelect,
    )
