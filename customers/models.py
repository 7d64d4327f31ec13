import datetime
import decimal
import functools
import re

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex, OpClass
from django.core.exceptions import ValidationError
from django.db import connection, models, transaction
from django.db.models import Count, F, Max, Min, Q, Sum
from django.http import QueryDict
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from guardian.models import GroupObjectPermissionBase, UserObjectPermissionBase

from cims.ids import uuid7
from customers import search
from customers.fields import (
    EncryptedCharField,
    EncryptedDateField,
    EncryptedEmailField,
    encrypted_fields,
)
from customers.phones import normalize_phone

# What the database used to check of a stored phone number, before it was encrypted.
E164 = re.compile(r"\+[1-9][0-9]{6,14}")


class Source(models.TextChoices):
    WEB_FORM = "web_form", _("Web form")
    SURVEY = "survey", _("Survey")
    STORE = "store", _("Store")
    EXPO = "expo", _("Expo")
    IMPORT = "import", _("Import")
    API = "api", _("API")
    REFERRAL = "referral", _("Referral")
    SOCIAL = "social", _("Social media")
    OTHER = "other", _("Other")


class Status(models.TextChoices):
    LEAD = "lead", _("Lead")
    PROSPECT = "prospect", _("Prospect")
    ACTIVE = "active", _("Active")
    INACTIVE = "inactive", _("Inactive")
    CHURNED = "churned", _("Churned")


class Gender(models.TextChoices):
    UNKNOWN = "", _("Not specified")
    FEMALE = "female", _("Female")
    MALE = "male", _("Male")
    OTHER = "other", _("Other")


class Channel(models.TextChoices):
    WEBSITE = "website", _("Website")
    APP = "app", _("Mobile app")
    WECHAT = "wechat", _("WeChat")
    PHONE = "phone", _("Phone")
    EMAIL = "email", _("Email")
    SMS = "sms", _("SMS")
    STORE = "store", _("Store")
    EXPO = "expo", _("Expo")
    MARKETPLACE = "marketplace", _("Marketplace")
    SOCIAL = "social", _("Social media")
    OTHER = "other", _("Other")


class Tag(models.Model):
    """The vocabulary of tags, offered as suggestions; customers store tag names in an array."""

    name = models.CharField(_("name"), max_length=50, unique=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("tag")
        verbose_name_plural = _("tags")

    def __str__(self):
        return self.name

    @classmethod
    def remember(cls, names):
        new = set(names) - set(cls.objects.filter(name__in=names).values_list("name", flat=True))
        if new:
            cls.objects.bulk_create([cls(name=n) for n in new], ignore_conflicts=True)
            from customers.filters import forget_filter_options

            forget_filter_options()


class CustomField(models.Model):
    """An administrator-defined attribute, stored in Customer.attributes under its key."""

    class Type(models.TextChoices):
        TEXT = "text", _("Text")
        NUMBER = "number", _("Number")
        DATE = "date", _("Date")
        CHOICE = "choice", _("Choice")
        MULTI_CHOICE = "multi_choice", _("Multiple choice")
        BOOLEAN = "boolean", _("Yes/no")

    key = models.SlugField(
        _("key"),
        max_length=50,
        unique=True,
        help_text=_("Stored name of the attribute: lower-case letters, digits and underscores."),
    )
    label = models.CharField(_("label"), max_length=100)
    label_en = models.CharField(_("English label"), max_length=100, blank=True)
    type = models.CharField(_("type"), max_length=20, choices=Type.choices, default=Type.TEXT)
    choices = models.JSONField(
        _("choices"),
        default=list,
        blank=True,
        help_text=_('For choice fields: a JSON list of options, e.g. ["gold", "silver"].'),
    )
    required = models.BooleanField(_("required"), default=False)
    position = models.PositiveSmallIntegerField(_("position"), default=0)
    active = models.BooleanField(_("active"), default=True)

    class Meta:
        ordering = ["position", "key"]
        verbose_name = _("custom field")
        verbose_name_plural = _("custom fields")
        constraints = [
            models.CheckConstraint(
                condition=Q(key__regex=r"^[a-z][a-z0-9_]*$"), name="customfield_key_format"
            ),
        ]

    def __str__(self):
        return self.display_label

    @property
    def display_label(self):
        from django.utils.translation import get_language

        if self.label_en and (get_language() or "").startswith("en"):
            return self.label_en
        return self.label

    def clean(self):
        has_choices = self.type in (self.Type.CHOICE, self.Type.MULTI_CHOICE)
        if has_choices and (
            not isinstance(self.choices, list)
            or not self.choices
            or not all(isinstance(c, str) and c for c in self.choices)
        ):
            raise ValidationError({"choices": _("Give a list of at least one option.")})
        if not has_choices and self.choices:
            raise ValidationError({"choices": _("Only choice fields have options.")})

    def to_json(self, value):
        """The JSON-storable form of a cleaned form value; None means "not set"."""
        if value in (None, "", []):
            return None
        if self.type == self.Type.NUMBER:
            value = decimal.Decimal(value)
            return int(value) if value == value.to_integral_value() else float(value)
        if self.type == self.Type.DATE:
            return value.isoformat()
        if self.type == self.Type.MULTI_CHOICE:
            return sorted(value)
        return value

    def validate_json(self, value):
        """Check a stored value against this definition (imports and the API write JSON)."""
        valid = {
            self.Type.TEXT: lambda v: isinstance(v, str) and len(v) <= 500,
            self.Type.NUMBER: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
            self.Type.DATE: _is_iso_date,
            self.Type.CHOICE: lambda v: v in self.choices,
            self.Type.MULTI_CHOICE: lambda v: (
                isinstance(v, list) and all(c in self.choices for c in v)
            ),
            self.Type.BOOLEAN: lambda v: isinstance(v, bool),
        }[self.type]
        if not valid(value):
            raise ValidationError(
                _("%(value)s is not a valid value for %(field)s."),
                params={"value": value, "field": self.display_label},
            )


def _is_iso_date(value):
    try:
        datetime.date.fromisoformat(value)
    except (TypeError, ValueError):
        return False
    return True


class CustomerQuerySet(models.QuerySet):
    def visible_to(self, user):
        from accounts.permissions import visible_customers

        return visible_customers(user, self)

    def search(self, text):
        condition = search.search_q(text)
        return self if condition is None else self.filter(condition)

    def with_tags(self, tags):
        return self.filter(tags__contains=list(tags))

    def delete_archived_history(self):
        """Delete these customers' archived interactions and orders, before deleting them:
        the archive keeps its customer as a plain id, which no foreign key cascades from.
        Deleted archived orders leave the reports' figures as deleted live orders do."""
        ids = self.values("pk")
        ArchivedInteraction.objects.filter(customer_id__in=ids).delete()
        ArchivedOrder.objects.filter(customer_id__in=ids).delete()

    def bulk_create(self, objs, *args, **kwargs):
        # As save() does: normalised email and phone, and their blind indexes.
        objs = list(objs)
        for obj in objs:
            obj.refresh_contact_fields()
        return super().bulk_create(objs, *args, **kwargs)

    # Email and phone are encrypted: exact matches go through their blind indexes.
    def with_email(self, email):
        return self.filter(search.email_q(email))

    def with_phone(self, phone):
        """Customers with this phone number, typed in any format."""
        return self.filter(search.phone_q(phone))

    def with_phone_ending(self, digits):
        """Customers whose phone number ends in these four digits."""
        return self.filter(search.phone_ending_q(digits))


class Customer(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    display_name = models.CharField(_("name"), max_length=200)
    family_name = models.CharField(_("family name"), max_length=100, blank=True)
    given_name = models.CharField(_("given name"), max_length=100, blank=True)
    gender = models.CharField(
        _("gender"), max_length=10, choices=Gender.choices, blank=True, default=""
    )
    # Phone, email, birthday and street are encrypted at rest (customers.fields); the empty
    # value is stored as NULL.
    birthday = EncryptedDateField(_("birthday"), blank=True)
    # The birthday's year in plain text, for age bands in lists and analyses (the birthday
    # itself stays encrypted); kept in step by refresh_contact_fields and bulk writers.
    birth_year = models.PositiveSmallIntegerField(_("year of birth"), null=True, editable=False)
    email = EncryptedEmailField(_("email"), max_length=254, blank=True)
    phone = EncryptedCharField(
        _("mobile phone"), max_length=20, blank=True, help_text=_("Stored in E.164 form.")
    )
    company = models.CharField(_("company"), max_length=200, blank=True)
    job_title = models.CharField(_("job title"), max_length=100, blank=True)

    country = models.CharField(_("country or region"), max_length=2, blank=True, default="CN")
    province = models.CharField(_("province"), max_length=50, blank=True)
    city = models.CharField(_("city"), max_length=50, blank=True)
    district = models.CharField(_("district"), max_length=50, blank=True)
    street = EncryptedCharField(_("street address"), max_length=200, blank=True)
    postcode = models.CharField(_("postcode"), max_length=20, blank=True)

    source = models.CharField(
        _("source channel"), max_length=20, choices=Source.choices, default=Source.OTHER
    )
    status = models.CharField(
        _("status"), max_length=20, choices=Status.choices, default=Status.LEAD
    )
    tags = ArrayField(
        models.CharField(max_length=50), verbose_name=_("tags"), default=list, blank=True
    )
    # Owner and team are found through the list's (owner, created_at, id) and (team, ...)
    # indexes; indexes of their own would only cost every insert.
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("owner"),
        null=True,
        blank=True,
        on_delete=models.DB_SET_NULL,
        related_name="owned_customers",
        db_index=False,
    )
    team = models.ForeignKey(
        "accounts.Team",
        verbose_name=_("team"),
        null=True,
        blank=True,
        on_delete=models.DB_SET_NULL,
        related_name="customers",
        db_index=False,
    )
    notes = models.TextField(_("notes"), blank=True)
    attributes = models.JSONField(_("custom attributes"), default=dict, blank=True)
    # The purposes the customer consents to now (the latest Consent of each purpose is a grant),
    # so that lists and exports filter on consent through one GIN index. Database triggers keep
    # it in step with customers_consent, whatever writes there (see customers.consents).
    consented_purposes = ArrayField(
        models.CharField(max_length=30),
        verbose_name=_("consents to"),
        default=list,
        blank=True,
        editable=False,
    )
    # The customer's number in another system (a previous CRM, a shop), which imports match on.
    external_id = models.CharField(
        _("external ID"),
        max_length=100,
        blank=True,
        default="",
        # Kept in the database too, for bulk loads that insert rows without naming the column.
        db_default="",
        help_text=_("The customer's number in another system, e.g. a previous CRM."),
    )

    created_at = models.DateTimeField(_("created at"), default=timezone.now, editable=False)
    updated_at = models.DateTimeField(_("updated at"), default=timezone.now, editable=False)
    # Not indexed: nothing looks customers up by who created or last changed them, and users
    # are deactivated rather than deleted (deleting one scans the table once).
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("created by"),
        null=True,
        blank=True,
        editable=False,
        on_delete=models.DB_SET_NULL,
        related_name="+",
        db_index=False,
    )
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("updated by"),
        null=True,
        blank=True,
        editable=False,
        on_delete=models.DB_SET_NULL,
        related_name="+",
        db_index=False,
    )
    # Incremented by every save; an edit form carries the version it was opened at.
    version = models.PositiveIntegerField(default=1, editable=False)

    name_pinyin = models.CharField(max_length=300, blank=True, editable=False)
    search_text = models.TextField(blank=True, editable=False)
    search_keys = ArrayField(
        models.CharField(max_length=100), default=list, blank=True, editable=False
    )
    # Blind indexes (keyed hashes, cims.crypto.blind_index) of the lower-case email, the E.164
    # phone and its last four digits: exact search, duplicate checks and uniqueness.
    email_index = models.BinaryField(null=True, editable=False)
    phone_index = models.BinaryField(null=True, editable=False)
    phone_last4_index = models.BinaryField(null=True, editable=False)

    objects = CustomerQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("customer")
        verbose_name_plural = _("customers")
        # Role-wide abilities, given to roles (groups). Which customers a user may view, change
        # or delete is decided per object in accounts.permissions.
        permissions = [
            ("view_all_customers", _("Can view every customer")),
            ("change_all_customers", _("Can change and delete every customer")),
            ("view_team_customers", _("Can view the customers of their teams")),
            ("change_team_customers", _("Can change and delete the customers of their teams")),
            ("view_sensitive_data", _("Can view sensitive data")),
            ("share_customer", _("Can share customers they own or manage")),
            ("bulk_change_customers", _("Can change customers in bulk")),
            ("export_customers", _("Can export customers")),
            ("import_customers", _("Can import customers from files")),
            ("merge_customers", _("Can merge duplicate customers")),
            ("export_customer_data", _("Can export everything held about a customer")),
            ("erase_customer", _("Can erase a customer's personal data")),
        ]
        constraints = [
            # Lower-case email and E.164 phone cannot be checked on ciphertexts: save() makes
            # them so (refresh_contact_fields) before computing the indexes.
            models.UniqueConstraint(
                fields=["email_index"],
                condition=Q(email_index__isnull=False),
                name="customer_unique_email",
                violation_error_message=_("Another customer already has this email."),
            ),
            models.UniqueConstraint(
                fields=["phone_index"],
                condition=Q(phone_index__isnull=False),
                name="customer_unique_phone",
                violation_error_message=_("Another customer already has this mobile number."),
            ),
            models.UniqueConstraint(
                fields=["external_id"],
                condition=~Q(external_id=""),
                name="customer_unique_external_id",
                violation_error_message=_("Another customer already has this external ID."),
            ),
            models.CheckConstraint(
                condition=Q(status__in=Status.values), name="customer_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(source__in=Source.values), name="customer_source_valid"
            ),
            models.CheckConstraint(
                condition=Q(gender__in=Gender.values), name="customer_gender_valid"
            ),
        ]
        indexes = [
            # Keyset paging: one index per sort order, the id breaking ties.
            models.Index(fields=["created_at", "id"], name="customer_created_idx"),
            models.Index(fields=["updated_at", "id"], name="customer_updated_idx"),
            models.Index(fields=["name_pinyin", "id"], name="customer_name_idx"),
            models.Index(fields=["company", "id"], name="customer_company_idx"),
            # The most common filters, each with the default sort behind it.
            models.Index(fields=["status", "created_at", "id"], name="customer_status_idx"),
            models.Index(fields=["source", "created_at", "id"], name="customer_source_idx"),
            models.Index(fields=["owner", "created_at", "id"], name="customer_owner_idx"),
            models.Index(fields=["team", "created_at", "id"], name="customer_team_idx"),
            models.Index(fields=["province", "city"], name="customer_place_idx"),
            models.Index(
                fields=["phone_last4_index"],
                condition=Q(phone_last4_index__isnull=False),
                name="customer_phone_end_idx",
            ),
            GinIndex(fields=["tags"], name="customer_tags_idx"),
            GinIndex(fields=["consented_purposes"], name="customer_consents_idx"),
            GinIndex(OpClass("attributes", name="jsonb_path_ops"), name="customer_attributes_idx"),
            GinIndex(fields=["search_keys"], name="customer_search_keys_idx"),
            GinIndex(OpClass("search_text", name="gin_trgm_ops"), name="customer_search_text_idx"),
        ]

    def __str__(self):
        return self.display_name

    def save(self, *args, **kwargs):
        self.refresh_search_fields()
        self.refresh_contact_fields()
        if (update_fields := kwargs.get("update_fields")) is not None:
            # An index is saved with the value it is computed from.
            update_fields = set(update_fields)
            if "email" in update_fields:
                update_fields.add("email_index")
            if "phone" in update_fields:
                update_fields.update(("phone_index", "phone_last4_index"))
            if "birthday" in update_fields:
                update_fields.add("birth_year")
            kwargs["update_fields"] = update_fields
        super().save(*args, **kwargs)

    def get_absolute_url(self):
        return reverse("customers:detail", args=[self.pk])

    @functools.cached_property
    def erasure(self):
        """The record of this customer's erasure, or None: an erased customer is a tombstone."""
        return Erasure.objects.filter(customer_id=self.pk).first()

    def refresh_search_fields(self):
        for field, value in search.search_fields(
            display_name=self.display_name,
            family_name=self.family_name,
            given_name=self.given_name,
            company=self.company,
        ).items():
            setattr(self, field, value)

    def refresh_contact_fields(self):
        """Bring a changed email to lower case and phone to E.164, and compute their indexes
        (and the year of a changed birthday).

        Values not read or set since the row was loaded were normalised when written, and their
        indexes stand. A phone that cannot be read as a number is a ValidationError.
        """
        if not Customer.email.field.untouched(self):
            self.email = search.normalize_email(self.email)
            self.email_index = search.email_index(self.email)
        if not Customer.phone.field.untouched(self):
            phone = (self.phone or "").strip()
            if phone and not E164.fullmatch(phone):
                phone = normalize_phone(phone)
                if phone is None:
                    raise ValidationError(
                        {
                            "phone": _(
                                "Enter a valid mobile number, e.g. 138 0013 8000 or "
                                "+86 138 0013 8000."
                            )
                        },
                        code="invalid",
                    )
            self.phone = phone
            self.phone_index, self.phone_last4_index = search.phone_indexes(phone)
        if not Customer.birthday.field.untouched(self):
            self.birth_year = self.birthday.year if self.birthday else None

    @staticmethod
    def contact_q(*, email="", phone=""):
        """Customers with this email or this phone (in any format), found by blind index."""
        return search.email_q(email) | search.phone_q(phone)

    def unreadable_fields(self):
        """Names of the encrypted fields whose stored value cannot be decrypted (shown empty)."""
        return [f.name for f in encrypted_fields(Customer) if f.is_unreadable(self)]

    def clean_fields(self, exclude=None):
        # Attributes are checked here rather than in clean(), which cannot tell whether the
        # field is validated: a CustomerForm edits them as attr_* fields and excludes the
        # JSON field, and an error keyed to a field a form lacks is a crash, not a message.
        errors = {}
        try:
            super().clean_fields(exclude=exclude)
        except ValidationError as error:
            errors = error.update_error_dict(errors)
        if "attributes" not in (exclude or ()):
            try:
                self.validate_attributes()
            except ValidationError as error:
                errors = error.update_error_dict(errors)
        if errors:
            raise ValidationError(errors)

    def clean(self):
        if not self.display_name.strip():
            self.display_name = self.name_from_parts(self.family_name, self.given_name)
        self.refresh_contact_fields()

    @staticmethod
    def name_from_parts(family_name, given_name):
        """张 + 伟 -> 张伟; Smith + John -> John Smith."""
        if (family_name + given_name).isascii():
            return f"{given_name} {family_name}".strip()
        return f"{family_name}{given_name}".strip()

    def validate_attributes(self):
        # A retired (inactive) field's values are kept as they are, so a customer who has one
        # can still be saved; only active fields are checked and required.
        definitions = {f.key: f for f in CustomField.objects.all()}
        errors = []
        for key, value in self.attributes.items():
            if key not in definitions:
                errors.append(ValidationError(_("Unknown attribute %(key)s."), params={"key": key}))
            elif definitions[key].active:
                try:
                    definitions[key].validate_json(value)
                except ValidationError as error:
                    errors.append(error)
        for definition in definitions.values():
            if (
                definition.active
                and definition.required
                and self.attributes.get(definition.key) in (None, "", [])
            ):
                errors.append(
                    ValidationError(
                        _("%(field)s is required."), params={"field": definition.display_label}
                    )
                )
        if errors:
            raise ValidationError({"attributes": errors})

    @transaction.atomic
    def save_if_unchanged(self, *, expected_version, user):
        """Save unless someone else saved since `expected_version` was read.

        Returns False (and saves nothing) when the stored version has moved on, so the later of
        two concurrent edits is refused instead of silently overwriting the first.
        """
        current = (
            Customer.objects.select_for_update()
            .filter(pk=self.pk)
            .values_list("version", flat=True)
        )
        if not current or current[0] != expected_version:
            return False
        self.version = expected_version + 1
        self.updated_by = user
        self.updated_at = timezone.now()
        self.save()
        Tag.remember(self.tags)
        return True

    def order_summary(self):
        """Number of orders, first and last purchase, and total spent per currency: live and
        archived orders together, as the customer's metrics count them."""
        summary = {"count": 0, "first": None, "last": None}
        totals = {}
        for orders in (self.orders.all(), ArchivedOrder.objects.filter(customer_id=self.pk)):
            part = orders.aggregate(
                count=Count("id"), first=Min("ordered_at"), last=Max("ordered_at")
            )
            summary["count"] += part["count"]
            moments = [m for m in (summary["first"], part["first"]) if m is not None]
            summary["first"] = min(moments, default=None)
            moments = [m for m in (summary["last"], part["last"]) if m is not None]
            summary["last"] = max(moments, default=None)
            for row in orders.values("currency").annotate(total=Sum("amount")).order_by():
                totals[row["currency"]] = totals.get(row["currency"], 0) + row["total"]
        summary["totals"] = [
            {"currency": currency, "total": total}
            for currency, total in sorted(totals.items(), key=lambda item: -item[1])
        ]
        return summary

    def current_consents(self):
        """The latest consent record for each purpose."""
        return (
            self.consents.order_by("purpose", "-recorded_at")
            .distinct("purpose")
            .select_related("recorded_by")
        )

    def timeline(self, *, before=None, limit=20):
        """Interactions and orders, newest first: up to `limit` entries older than `before`.

        `before` is a (time, id) pair from the last entry of the previous page. Returns the
        entries and whether more exist.

        Archived entries (older months moved out of the live tables) follow the live ones in
        the same order, marked by their `archived` attribute: the customer's history reads as
        one, and the archive is only read by an index on the customer.
        """
        interactions = self.interactions.select_related("created_by")
        orders = self.orders.all()
        archived_interactions = ArchivedInteraction.objects.filter(
            customer_id=self.pk
        ).select_related("recorded_by")
        archived_orders = ArchivedOrder.objects.filter(customer_id=self.pk)
        if before is not None:
            interactions = interactions.filter(_before(before, "occurred_at"))
            orders = orders.filter(_before(before, "ordered_at"))
            archived_interactions = archived_interactions.filter(_before(before, "occurred_at"))
            archived_orders = archived_orders.filter(_before(before, "ordered_at"))
        entries = [
            *interactions.order_by("-occurred_at", "-id")[: limit + 1],
            *orders.order_by("-ordered_at", "-id")[: limit + 1],
            *archived_interactions.order_by("-occurred_at", "-id")[: limit + 1],
            *archived_orders.order_by("-ordered_at", "-id")[: limit + 1],
        ]
        entries.sort(key=lambda e: (e.occurred, e.id), reverse=True)
        return entries[:limit], len(entries) > limit


def _before(cursor, field):
    moment, pk = cursor
    return Q(**{f"{field}__lt": moment}) | Q(**{field: moment, "id__lt": pk})


class InteractionKind(models.TextChoices):
    VISIT = "visit", _("Visit")
    CALL = "call", _("Call")
    EMAIL = "email", _("Email")
    MEETING = "meeting", _("Meeting")
    INQUIRY = "inquiry", _("Inquiry")
    COMPLAINT = "complaint", _("Complaint")
    FORM = "form_submission", _("Form submission")
    SOCIAL = "social", _("Social media")


class Interaction(models.Model):
    """Something that happened between the company and a customer.

    A leaf table that grows to hundreds of millions of rows, partitioned by month of
    occurred_at (customers.partitions): nothing may reference it by foreign key. The database's
    primary key is (id, occurred_at), as a partitioned table's must contain the partition
    column; Django keeps `id` alone as the primary key, which holds as well: ids are uuid7,
    made here and never reused. Months older than ARCHIVE_HISTORY_AFTER_MONTHS move to
    ArchivedInteraction.
    """

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    customer = models.ForeignKey(
        Customer,
        verbose_name=_("customer"),
        on_delete=models.DB_CASCADE,
        related_name="interactions",
        db_index=False,
    )
    Kind = InteractionKind

    kind = models.CharField(_("kind"), max_length=20, choices=InteractionKind.choices)
    channel = models.CharField(
        _("channel"), max_length=20, choices=Channel.choices, default=Channel.OTHER
    )
    occurred_at = models.DateTimeField(_("time"), default=timezone.now)
    summary = models.CharField(_("summary"), max_length=500)
    details = models.JSONField(_("details"), default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("recorded by"),
        null=True,
        blank=True,
        on_delete=models.DB_SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        ordering = ["-occurred_at", "-id"]
        verbose_name = _("interaction")
        verbose_name_plural = _("interactions")
        indexes = [
            models.Index(
                fields=["customer", "-occurred_at", "-id"], name="interaction_customer_idx"
            ),
            models.Index(fields=["occurred_at"], name="interaction_time_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind__in=InteractionKind.values), name="interaction_kind_valid"
            ),
        ]

    archived = False

    def __str__(self):
        return self.summary

    @property
    def occurred(self):
        return self.occurred_at


class Order(models.Model):
    """A purchase. Lines live inside the row (JSON) so the table stays a partitionable leaf.

    Partitioned by month of ordered_at, like Interaction (whose docstring says why Django's
    primary key stays `id`); order numbers are kept unique by OrderNumber.
    """

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    customer = models.ForeignKey(
        Customer,
        verbose_name=_("customer"),
        on_delete=models.DB_CASCADE,
        related_name="orders",
        db_index=False,
    )
    source_system = models.CharField(
        _("source system"),
        max_length=50,
        default="cims",
        help_text=_("The system the order number comes from, e.g. an online shop or an ERP."),
    )
    external_id = models.CharField(_("order number"), max_length=100)
    ordered_at = models.DateTimeField(_("order time"), default=timezone.now)
    amount = models.DecimalField(_("amount"), max_digits=14, decimal_places=2)
    currency = models.CharField(_("currency"), max_length=3, default="CNY")
    channel = models.CharField(
        _("channel"), max_length=20, choices=Channel.choices, default=Channel.STORE
    )
    lines = models.JSONField(
        _("order lines"),
        default=list,
        blank=True,
        help_text=_("A list of {product, quantity, unit_price}."),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        ordering = ["-ordered_at", "-id"]
        verbose_name = _("order")
        verbose_name_plural = _("orders")
        # The order numbers' uniqueness is kept in OrderNumber: a unique index of a table
        # partitioned by month must contain the month's column.
        constraints = [
            models.CheckConstraint(condition=Q(amount__gte=0), name="order_amount_not_negative"),
            models.CheckConstraint(
                condition=Q(currency__regex=r"^[A-Z]{3}$"), name="order_currency_iso"
            ),
        ]
        indexes = [
            models.Index(fields=["customer", "-ordered_at", "-id"], name="order_customer_idx"),
            models.Index(fields=["ordered_at"], name="order_time_idx"),
        ]

    archived = False

    def __str__(self):
        return self.external_id

    @property
    def occurred(self):
        return self.ordered_at

    @staticmethod
    def total_of(lines):
        return sum(
            (
                decimal.Decimal(str(line["quantity"])) * decimal.Decimal(str(line["unit_price"]))
                for line in lines
            ),
            decimal.Decimal("0"),
        ).quantize(decimal.Decimal("0.01"))


class OrderNumber(models.Model):  # noqa: DJ008 (never shown: it only holds numbers taken)
    """The order number of every order, live or archived: their uniqueness, kept by triggers.

    customers_order is partitioned by month, so its primary key is (id, ordered_at) and it
    cannot hold a unique index on (source_system, external_id). Triggers on customers_order and
    customers_archivedorder (migration 0014) keep one row here per order in either table; its
    unique constraint, which keeps the name the orders' own constraint had, refuses a second
    order with a number already taken, live or archived, with the same IntegrityError.
    """

    order_id = models.UUIDField(primary_key=True)
    source_system = models.CharField(max_length=50)
    external_id = models.CharField(max_length=100)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["source_system", "external_id"], name="order_unique_external_id"
            ),
        ]

    @staticmethod
    def fill_missing():
        """Add the numbers of orders loaded with the triggers off (a bulk load by a superuser
        with session_replication_role = replica, as seed_demo does); returns how many. A number
        another order has raises the IntegrityError the triggers would have."""
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO customers_ordernumber (order_id, source_system, external_id) "
                "SELECT id, source_system, external_id FROM customers_order o "
                "WHERE NOT EXISTS (SELECT 1 FROM customers_ordernumber n WHERE n.order_id = o.id) "
                "UNION ALL SELECT id, source_system, external_id FROM customers_archivedorder a "
                "WHERE NOT EXISTS (SELECT 1 FROM customers_ordernumber n WHERE n.order_id = a.id) "
                "ON CONFLICT (order_id) DO NOTHING"
            )
            return cursor.rowcount


class ArchivedHistory(models.Model):
    """What archived interactions and orders share: the live table's columns without foreign
    keys, the time of archiving, and joins for reports over live and archived history.

    Archiving moves old months of history, and the whole history of an archived customer, into
    these tables, so the live tables stay small while nothing is lost. Restoring moves rows
    back unchanged.
    """

    id = models.UUIDField(primary_key=True, editable=False)
    customer_id = models.UUIDField(_("customer"), db_index=True)
    created_at = models.DateTimeField(_("created at"))
    archived_at = models.DateTimeField(_("archived at"), default=timezone.now)
    # Joins without columns or constraints: the customer is either live or archived.
    live_customer = models.ForeignObject(
        "Customer",
        models.DO_NOTHING,
        from_fields=["customer_id"],
        to_fields=["id"],
        related_name="+",
        null=True,
    )
    archived_customer = models.ForeignObject(
        "ArchivedCustomer",
        models.DO_NOTHING,
        from_fields=["customer_id"],
        to_fields=["id"],
        related_name="+",
        null=True,
    )

    archived = True

    class Meta:
        abstract = True


class ArchivedInteraction(ArchivedHistory):
    """An interaction moved out of the live table by archiving."""

    kind = models.CharField(_("kind"), max_length=20, choices=InteractionKind.choices)
    channel = models.CharField(_("channel"), max_length=20, choices=Channel.choices)
    occurred_at = models.DateTimeField(_("time"))
    summary = models.CharField(_("summary"), max_length=500)
    details = models.JSONField(_("details"), default=dict, blank=True)
    created_by_id = models.BigIntegerField(_("recorded by"), null=True, blank=True)
    # The recorder may have been deleted since: a join without a constraint.
    recorded_by = models.ForeignObject(
        settings.AUTH_USER_MODEL,
        models.DO_NOTHING,
        from_fields=["created_by_id"],
        to_fields=["id"],
        related_name="+",
        null=True,
    )

    class Meta:
        ordering = ["-occurred_at", "-id"]
        verbose_name = _("archived interaction")
        verbose_name_plural = _("archived interactions")
        indexes = [models.Index(fields=["occurred_at"], name="archived_interaction_time_idx")]

    def __str__(self):
        return self.summary

    @property
    def occurred(self):
        return self.occurred_at

    @property
    def created_by(self):
        # Named like the live interaction's author, for the timeline.
        return self.recorded_by


class ArchivedOrder(ArchivedHistory):
    """An order moved out of the live table by archiving."""

    source_system = models.CharField(_("source system"), max_length=50)
    external_id = models.CharField(_("order number"), max_length=100)
    ordered_at = models.DateTimeField(_("order time"))
    amount = models.DecimalField(_("amount"), max_digits=14, decimal_places=2)
    currency = models.CharField(_("currency"), max_length=3)
    channel = models.CharField(_("channel"), max_length=20, choices=Channel.choices)
    lines = models.JSONField(_("order lines"), default=list, blank=True)

    class Meta:
        ordering = ["-ordered_at", "-id"]
        verbose_name = _("archived order")
        verbose_name_plural = _("archived orders")
        indexes = [models.Index(fields=["ordered_at"], name="archived_order_time_idx")]

    def __str__(self):
        return self.external_id

    @property
    def occurred(self):
        return self.ordered_at


class ArchivedCustomerQuerySet(models.QuerySet):
    def visible_to(self, user):
        from accounts.permissions import visible_archived_customers

        return visible_archived_customers(user, self)

    def search(self, text):
        # The same derived columns and blind indexes as live customers, so the same filter.
        condition = search.search_q(text)
        return self if condition is None else self.filter(condition)

    def with_tags(self, tags):
        return self.filter(tags__contains=list(tags))


class ArchivedCustomer(models.Model):
    """A customer moved out of the live tables after a long time without activity.

    The row keeps every column of customers_customer as it was stored: encrypted values stay
    the ciphertexts written for the live table and row id (`encrypted_for_table`), so they read
    the same here and after a restore, and the derived search columns and blind indexes let the
    archive be searched like the live list. The customer's small related rows (consents,
    shares, analytics figures, proposed changes, duplicate decisions, links from submissions)
    are kept in `related` as to_jsonb snapshots; interactions and orders move to
    ArchivedInteraction and ArchivedOrder. customers.archiving moves them both ways.
    """

    encrypted_for_table = "customers_customer"

    id = models.UUIDField(primary_key=True, editable=False)
    display_name = models.CharField(_("name"), max_length=200)
    family_name = models.CharField(_("family name"), max_length=100, blank=True)
    given_name = models.CharField(_("given name"), max_length=100, blank=True)
    gender = models.CharField(_("gender"), max_length=10, choices=Gender.choices, blank=True)
    birthday = EncryptedDateField(_("birthday"), blank=True)
    birth_year = models.PositiveSmallIntegerField(_("year of birth"), null=True)
    email = EncryptedEmailField(_("email"), max_length=254, blank=True)
    phone = EncryptedCharField(_("mobile phone"), max_length=20, blank=True)
    company = models.CharField(_("company"), max_length=200, blank=True)
    job_title = models.CharField(_("job title"), max_length=100, blank=True)
    country = models.CharField(_("country or region"), max_length=2, blank=True)
    province = models.CharField(_("province"), max_length=50, blank=True)
    city = models.CharField(_("city"), max_length=50, blank=True)
    district = models.CharField(_("district"), max_length=50, blank=True)
    street = EncryptedCharField(_("street address"), max_length=200, blank=True)
    postcode = models.CharField(_("postcode"), max_length=20, blank=True)
    source = models.CharField(_("source channel"), max_length=20, choices=Source.choices)
    status = models.CharField(_("status"), max_length=20, choices=Status.choices)
    tags = ArrayField(
        models.CharField(max_length=50), verbose_name=_("tags"), default=list, blank=True
    )
    # Users and teams are deactivated rather than deleted; should one be deleted, the archive
    # loses the reference as the live table does.
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("owner"),
        null=True,
        blank=True,
        on_delete=models.DB_SET_NULL,
        related_name="+",
        db_index=False,
    )
    team = models.ForeignKey(
        "accounts.Team",
        verbose_name=_("team"),
        null=True,
        blank=True,
        on_delete=models.DB_SET_NULL,
        related_name="+",
        db_index=False,
    )
    notes = models.TextField(_("notes"), blank=True)
    attributes = models.JSONField(_("custom attributes"), default=dict, blank=True)
    consented_purposes = ArrayField(
        models.CharField(max_length=30),
        verbose_name=_("consents to"),
        default=list,
        blank=True,
        editable=False,
    )
    external_id = models.CharField(_("external ID"), max_length=100, blank=True, default="")
    created_at = models.DateTimeField(_("created at"))
    updated_at = models.DateTimeField(_("updated at"))
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("created by"),
        null=True,
        blank=True,
        on_delete=models.DB_SET_NULL,
        related_name="+",
        db_index=False,
    )
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("updated by"),
        null=True,
        blank=True,
        on_delete=models.DB_SET_NULL,
        related_name="+",
        db_index=False,
    )
    version = models.PositiveIntegerField(default=1)
    name_pinyin = models.CharField(max_length=300, blank=True)
    search_text = models.TextField(blank=True)
    search_keys = ArrayField(models.CharField(max_length=100), default=list, blank=True)
    email_index = models.BinaryField(null=True)
    phone_index = models.BinaryField(null=True)
    phone_last4_index = models.BinaryField(null=True)

    archived_at = models.DateTimeField(_("archived at"), default=timezone.now)
    # Who the customer was shared with when archived, as "user:<id>:<codename>" and
    # "group:<id>:<codename>": the permission module's condition on shares, one indexed overlap.
    share_keys = ArrayField(models.CharField(max_length=80), default=list, blank=True)
    related = models.JSONField(default=dict, blank=True)

    objects = ArchivedCustomerQuerySet.as_manager()

    class Meta:
        ordering = ["name_pinyin", "id"]
        verbose_name = _("archived customer")
        verbose_name_plural = _("archived customers")
        indexes = [
            models.Index(fields=["name_pinyin", "id"], name="archived_customer_name_idx"),
            models.Index(fields=["owner", "name_pinyin", "id"], name="archived_customer_owner_idx"),
            models.Index(fields=["team", "name_pinyin", "id"], name="archived_customer_team_idx"),
            models.Index(fields=["archived_at"], name="archived_customer_time_idx"),
            models.Index(fields=["email_index"], name="archived_customer_email_idx"),
            models.Index(fields=["phone_index"], name="archived_customer_phone_idx"),
            models.Index(
                fields=["phone_last4_index"],
                condition=Q(phone_last4_index__isnull=False),
                name="archived_customer_phone4_idx",
            ),
            GinIndex(fields=["share_keys"], name="archived_customer_shares_idx"),
            GinIndex(fields=["tags"], name="archived_customer_tags_idx"),
            GinIndex(fields=["search_keys"], name="archived_customer_keys_idx"),
            GinIndex(
                OpClass("search_text", name="gin_trgm_ops"), name="archived_customer_text_idx"
            ),
        ]

    def __str__(self):
        return self.display_name

    def get_absolute_url(self):
        return reverse("customers:archived_detail", args=[self.pk])

    @functools.cached_property
    def erasure(self):
        """The record of this customer's erasure, or None (see Customer.erasure)."""
        return Erasure.objects.filter(customer_id=self.pk).first()

    def timeline(self, *, limit=200):
        """Archived interactions and orders, newest first, up to `limit` of each."""
        entries = [
            *ArchivedInteraction.objects.filter(customer_id=self.pk)[:limit],
            *ArchivedOrder.objects.filter(customer_id=self.pk)[:limit],
        ]
        entries.sort(key=lambda e: (e.occurred, e.id), reverse=True)
        return entries

    def order_summary(self):
        orders = ArchivedOrder.objects.filter(customer_id=self.pk)
        summary = orders.aggregate(
            count=Count("id"), first=Min("ordered_at"), last=Max("ordered_at")
        )
        summary["totals"] = list(
            orders.values("currency").annotate(total=Sum("amount")).order_by("-total")
        )
        return summary

    def current_consents(self):
        """The latest kept consent record for each purpose, as (purpose label, granted, when)."""
        latest = {}
        for row in sorted(self.related.get("consents", []), key=lambda r: r["recorded_at"]):
            latest[row["purpose"]] = row
        return [
            (
                ConsentPurpose(p).label if p in ConsentPurpose.values else p,
                row["granted"],
                datetime.datetime.fromisoformat(row["recorded_at"]),
            )
            for p, row in sorted(latest.items())
        ]


class ConsentPurpose(models.TextChoices):
    MARKETING_EMAIL = "marketing_email", _("Marketing email")
    SMS = "sms", _("SMS")
    PHONE = "phone", _("Phone calls")
    DATA_PROCESSING = "data_processing", _("Data processing")


class Consent(models.Model):
    """One grant or withdrawal of consent; a customer's current state is the latest per purpose."""

    Purpose = ConsentPurpose

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    customer = models.ForeignKey(
        Customer,
        verbose_name=_("customer"),
        on_delete=models.DB_CASCADE,
        related_name="consents",
        db_index=False,
    )
    purpose = models.CharField(_("purpose"), max_length=30, choices=ConsentPurpose.choices)
    granted = models.BooleanField(_("granted"))
    recorded_at = models.DateTimeField(_("when"), default=timezone.now)
    source = models.CharField(
        _("source"), max_length=20, choices=Source.choices, default=Source.OTHER
    )
    wording = models.TextField(_("wording shown"), blank=True)
    wording_version = models.CharField(_("wording version"), max_length=50, blank=True)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("recorded by"),
        null=True,
        blank=True,
        on_delete=models.DB_SET_NULL,
        related_name="+",
    )

    class Meta:
        ordering = ["-recorded_at"]
        verbose_name = _("consent")
        verbose_name_plural = _("consents")
        indexes = [
            models.Index(
                fields=["customer", "purpose", "-recorded_at"], name="consent_customer_idx"
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(purpose__in=ConsentPurpose.values), name="consent_purpose_valid"
            ),
        ]

    def __str__(self):
        return f"{self.get_purpose_display()}: {self.granted}"


class SavedView(models.Model):
    """A user's named search, filters and sort of the customer list."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.DB_CASCADE, related_name="saved_views"
    )
    name = models.CharField(_("name"), max_length=100)
    query = models.TextField(_("query"), blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("saved view")
        verbose_name_plural = _("saved views")
        constraints = [
            models.UniqueConstraint(fields=["user", "name"], name="savedview_unique_name"),
        ]

    def __str__(self):
        return self.name

    def get_absolute_url(self):
        return reverse("customers:list") + (f"?{self.query}" if self.query else "")


class BulkAction(models.Model):
    """A change applied to many customers at once, with its progress."""

    class Action(models.TextChoices):
        ADD_TAGS = "add_tags", _("Add tags")
        REMOVE_TAGS = "remove_tags", _("Remove tags")
        ASSIGN_OWNER = "assign_owner", _("Assign owner")
        SET_STATUS = "set_status", _("Change status")
        DELETE = "delete", _("Delete")

    class State(models.TextChoices):
        PENDING = "pending", _("Waiting")
        RUNNING = "running", _("Running")
        DONE = "done", _("Done")
        FAILED = "failed", _("Failed")

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.DB_CASCADE, related_name="bulk_actions"
    )
    action = models.CharField(_("action"), max_length=20, choices=Action.choices)
    params = models.JSONField(default=dict, blank=True)
    # Either the chosen customers or the list query whose matches are changed.
    customer_ids = ArrayField(models.UUIDField(), null=True, blank=True)
    query = models.TextField(blank=True)
    total = models.PositiveIntegerField(default=0)
    processed = models.PositiveIntegerField(default=0)
    changed = models.PositiveIntegerField(default=0)
    # Keyset position of the last finished batch, so a retried task resumes where it stopped.
    last_id = models.UUIDField(null=True, blank=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("bulk action")
        verbose_name_plural = _("bulk actions")

    def __str__(self):
        return f"{self.get_action_display()} ({self.total})"

    def get_absolute_url(self):
        return reverse("customers:bulk_progress", args=[self.pk])

    @property
    def percent(self):
        return 100 if not self.total else min(100, round(100 * self.processed / self.total))

    @property
    def finished(self):
        return self.state in (self.State.DONE, self.State.FAILED)

    def describe(self):
        """What this action does, for confirmations and messages."""
        if self.action in (self.Action.ADD_TAGS, self.Action.REMOVE_TAGS):
            return f"{self.get_action_display()}: {', '.join(self.params.get('tags', []))}"
        if self.action == self.Action.SET_STATUS:
            return f"{self.get_action_display()}: {Status(self.params['status']).label}"
        return str(self.get_action_display())

    def targets(self):
        """The customers this action changes, as the user who asked may change them now."""
        from accounts.permissions import changeable_customers, deletable_customers
        from customers.filters import CustomerFilter

        if self.action == self.Action.DELETE:
            customers = deletable_customers(self.user)
        else:
            customers = changeable_customers(self.user)
        if self.customer_ids is not None:
            return customers.filter(pk__in=self.customer_ids)
        filterset = CustomerFilter(QueryDict(self.query), queryset=customers)
        return filterset.qs if filterset.is_valid() else customers.none()

    def run(self, *, batch_size=1000):
        """Apply the action in batches by primary key, recording progress after each.

        Each batch commits with its progress, so a run that is interrupted and started again
        continues after the last finished batch instead of starting over.
        """
        BulkAction.objects.filter(pk=self.pk).update(state=self.State.RUNNING)
        targets = self.targets().order_by("pk")
        while True:
            batch = targets.filter(pk__gt=self.last_id) if self.last_id else targets
            ids = list(batch.values_list("pk", flat=True)[:batch_size])
            if not ids:
                break
            with transaction.atomic():
                self.changed += self.apply_to(ids)
                self.processed += len(ids)
                self.last_id = ids[-1]
                self.save(update_fields=["changed", "processed", "last_id"])
        self.state, self.finished_at = self.State.DONE, timezone.now()
        self.processed = max(self.processed, self.total)
        self.save(update_fields=["state", "finished_at", "processed"])

    def fail(self, error):
        BulkAction.objects.filter(pk=self.pk).update(
            state=self.State.FAILED, error=str(error)[:1000], finished_at=timezone.now()
        )

    def apply_to(self, ids):
        """Apply the action to the given customers in one statement; return how many changed."""
        targets = Customer.objects.filter(pk__in=ids)
        if self.action == self.Action.DELETE:
            targets.delete_archived_history()
            _total, by_model = targets.delete()
            return by_model.get(Customer._meta.label, 0)
        stamp = {"version": F("version") + 1, "updated_at": timezone.now(), "updated_by": self.user}
        if self.action == self.Action.ADD_TAGS:
            tags = self.params["tags"]
            Tag.remember(tags)
            # A customer lacking several of the tags is still one change, stamped once.
            changed = targets.exclude(tags__contains=tags).update(**stamp)
            # One statement per tag keeps each customer's tag order and never adds a duplicate.
            for tag in tags:
                targets.exclude(tags__contains=[tag]).update(
                    tags=ArrayAppend(F("tags"), models.Value(tag))
                )
            return changed
        if self.action == self.Action.REMOVE_TAGS:
            column = F("tags")
            for tag in self.params["tags"]:
                column = ArrayRemove(column, models.Value(tag))
            return targets.filter(tags__overlap=self.params["tags"]).update(tags=column, **stamp)
        if self.action == self.Action.ASSIGN_OWNER:
            owner = self.params.get("owner")
            return targets.exclude(owner_id=owner).update(owner_id=owner, **stamp)
        if self.action == self.Action.SET_STATUS:
            status = self.params["status"]
            return targets.exclude(status=status).update(status=status, **stamp)
        raise ValueError(f"Unknown bulk action {self.action}")


class ArrayAppend(models.Func):
    function = "array_append"
    output_field = ArrayField(models.CharField(max_length=50))


class ArrayRemove(models.Func):
    function = "array_remove"
    output_field = ArrayField(models.CharField(max_length=50))


class CustomerUserPermission(UserObjectPermissionBase):
    """A customer shared with one user (django-guardian's direct foreign key table)."""

    # Deletes cascade in the database, as they do from customers to their records. Permissions
    # are never deleted while in use: the foreign key refuses it.
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.DB_CASCADE)
    permission = models.ForeignKey("auth.Permission", on_delete=models.DO_NOTHING)
    content_object = models.ForeignKey(Customer, on_delete=models.DB_CASCADE)

    class Meta(UserObjectPermissionBase.Meta):
        indexes = [models.Index(fields=["user", "permission"], name="customer_user_perm_idx")]


class CustomerTeamPermission(GroupObjectPermissionBase):
    """A customer shared with a team, through the team's group."""

    group = models.ForeignKey("auth.Group", on_delete=models.DB_CASCADE)
    permission = models.ForeignKey("auth.Permission", on_delete=models.DO_NOTHING)
    content_object = models.ForeignKey(Customer, on_delete=models.DB_CASCADE)

    class Meta(GroupObjectPermissionBase.Meta):
        indexes = [models.Index(fields=["group", "permission"], name="customer_team_perm_idx")]


# --- Imports of customers from files (customers/imports.py) ---------------------------------


class ImportMapping(models.Model):
    """A named assignment of file columns (by header) to customer fields, kept to be reused."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    name = models.CharField(_("name"), max_length=100, unique=True)
    # {header as normalised by customers.import_fields.header_key: field key}
    columns = models.JSONField(default=dict)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DB_SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("import mapping")
        verbose_name_plural = _("import mappings")

    def __str__(self):
        return self.name


class CustomerImportQuerySet(models.QuerySet):
    def visible_to(self, user):
        """A user's own imports; every import for those who may change every customer."""
        from accounts.permissions import can_import

        if not can_import(user):
            return self.none()
        if user.has_perm("customers.change_all_customers"):
            return self
        return self.filter(user=user)


class CustomerImport(models.Model):
    """One file being imported: where it is in the wizard, its progress, and what it did."""

    class State(models.TextChoices):
        UPLOADED = "uploaded", _("Uploaded")
        CHECKING = "checking", _("Checking")
        CHECKED = "checked", _("Checked")
        QUEUED = "queued", _("Waiting to start")
        RUNNING = "running", _("Importing")
        DONE = "done", _("Done")
        FAILED = "failed", _("Failed")
        REVERTING = "reverting", _("Reverting")
        REVERTED = "reverted", _("Reverted")

    class OnDuplicate(models.TextChoices):
        SKIP = "skip", _("Skip them")
        UPDATE = "update", _("Update them")
        CREATE = "create", _("Create new customers anyway")

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("imported by"),
        on_delete=models.DB_CASCADE,
        related_name="customer_imports",
    )
    file = models.FileField(upload_to="imports/%Y/%m/", max_length=255, blank=True)
    file_name = models.CharField(_("file"), max_length=255)
    file_size = models.BigIntegerField(default=0)
    file_format = models.CharField(max_length=10)
    encoding = models.CharField(max_length=20, blank=True)
    delimiter = models.CharField(max_length=1, blank=True)
    headers = models.JSONField(default=list)
    sample = models.JSONField(default=list)
    # {column number (as text): field key}
    mapping = models.JSONField(default=dict)
    on_duplicate = models.CharField(
        _("customers already known"),
        max_length=10,
        choices=OnDuplicate.choices,
        default=OnDuplicate.SKIP,
    )
    dry_run = models.BooleanField(default=False)
    state = models.CharField(
        _("state"), max_length=10, choices=State.choices, default=State.UPLOADED
    )
    total_rows = models.PositiveIntegerField(_("rows"), default=0)
    processed = models.PositiveIntegerField(default=0)
    created = models.PositiveIntegerField(_("created"), default=0)
    updated = models.PositiveIntegerField(_("updated"), default=0)
    skipped = models.PositiveIntegerField(_("skipped"), default=0)
    failed = models.PositiveIntegerField(_("failed"), default=0)
    problem_count = models.PositiveIntegerField(default=0)
    # The check's findings: counts for each choice, the first rows as stored, the first problems.
    preview = models.JSONField(default=dict, blank=True)
    report = models.FileField(upload_to="imports/reports/%Y/%m/", max_length=255, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(_("uploaded at"), auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    reverted_at = models.DateTimeField(null=True, blank=True)
    reverted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DB_SET_NULL,
        related_name="+",
    )

    objects = CustomerImportQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("customer import")
        verbose_name_plural = _("customer imports")
        indexes = [models.Index(fields=["user", "-created_at"], name="import_user_idx")]

    def __str__(self):
        return self.file_name

    def get_absolute_url(self):
        return reverse("imports:detail", args=[self.pk])

    @property
    def busy(self):
        return self.state in (
            self.State.CHECKING,
            self.State.QUEUED,
            self.State.RUNNING,
            self.State.REVERTING,
        )

    @property
    def percent(self):
        if self.state in (self.State.DONE, self.State.CHECKED, self.State.REVERTED):
            return 100
        if not self.total_rows:
            return 0
        return min(99, round(100 * self.processed / self.total_rows))

    @property
    def revertible(self):
        return (
            self.state == self.State.DONE
            and not self.dry_run
            and bool(self.created or self.updated)
            and self.finished_at is not None
            and timezone.now() < self.revert_deadline
        )

    @property
    def revert_deadline(self):
        """Until when the import can be reverted: what that needs is deleted afterwards."""
        return self.finished_at + datetime.timedelta(days=settings.IMPORT_REVERT_DAYS)


class ImportedCustomer(models.Model):
    """A customer an import created or changed, with its row as it was before a change.

    Reverting an import deletes the customers it created and writes the previous rows back
    over those it changed, unless someone has changed them since (their version moved on).
    The rows are deleted IMPORT_REVERT_DAYS after the import (customers.imports.purge_files):
    they hold customers' earlier data, that of customers deleted since too.
    """

    id = models.BigAutoField(primary_key=True)
    customer_import = models.ForeignKey(
        CustomerImport, on_delete=models.DB_CASCADE, related_name="+", db_index=False
    )
    # No foreign key: a customer can be deleted or merged away while the record of the import
    # stays, and a key would slow the import's inserts.
    customer_id = models.UUIDField()
    row = models.PositiveIntegerField()
    created = models.BooleanField()
    # The customer's version as the import left it.
    version = models.PositiveIntegerField()
    # The whole stored row before the import changed it (to_jsonb of the table row).
    previous = models.JSONField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["customer_import", "customer_id"], name="imported_customer_idx")
        ]

    def __str__(self):
        return f"{self.customer_id} (row {self.row})"


# --- end of imports ---


# --- Duplicate customers: candidate pairs, dismissals, scans and merges ---------------------
# Found by customers.duplicates, merged and unmerged by customers.merging.


class DuplicateReason(models.TextChoices):
    SAME_NAME = "same_name", _("Same name")
    SAME_PINYIN = "same_pinyin", _("Name sounds the same (pinyin)")
    SIMILAR_NAME = "similar_name", _("Similar name")
    SAME_COMPANY = "same_company", _("Same company")
    SAME_CITY = "same_city", _("Same city")
    SAME_DISTRICT = "same_district", _("Same district")
    SAME_PHONE_ENDING = "same_phone_ending", _("Same last four digits of the phone")


class CustomerPairQuerySet(models.QuerySet):
    def of(self, customer_a, customer_b):
        a, b = CustomerPair.ordered(customer_a, customer_b)
        return self.filter(customer_a=a, customer_b=b)

    def involving(self, customer):
        pk = getattr(customer, "pk", customer)
        return self.filter(Q(customer_a=pk) | Q(customer_b=pk))

    def changeable_by(self, user):
        """Pairs of which the user may change both customers."""
        from accounts.permissions import changeable_customers

        customers = changeable_customers(user)
        if customers.query.is_empty():
            return self.none()
        if not customers.query.where:
            # Every customer: no condition to check, and none for PostgreSQL to plan around.
            return self
        ids = customers.values("pk")
        return self.filter(customer_a__in=ids, customer_b__in=ids)


class CustomerPair(models.Model):
    """Two customers, the one with the smaller id first, so that each pair is stored once."""

    customer_a = models.ForeignKey(
        Customer, on_delete=models.DB_CASCADE, related_name="+", db_index=False
    )
    customer_b = models.ForeignKey(Customer, on_delete=models.DB_CASCADE, related_name="+")

    objects = CustomerPairQuerySet.as_manager()

    class Meta:
        abstract = True

    @classmethod
    def ordered(cls, customer_a, customer_b):
        """(smaller id, larger id) of two customers or ids."""
        a, b = getattr(customer_a, "pk", customer_a), getattr(customer_b, "pk", customer_b)
        return (a, b) if str(a) < str(b) else (b, a)

    def other(self, customer):
        pk = getattr(customer, "pk", customer)
        return self.customer_b if self.customer_a_id == pk else self.customer_a


class DuplicateCandidate(CustomerPair):
    """Two customers who are probably the same person, as the last scan found them."""

    id = models.BigAutoField(primary_key=True)
    score = models.PositiveSmallIntegerField(_("score"))
    reasons = ArrayField(models.CharField(max_length=30), verbose_name=_("reasons"), default=list)
    found_at = models.DateTimeField(_("found at"), default=timezone.now)
    # The scan that last found the pair; pairs a later scan no longer finds are removed.
    seen_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = _("possible duplicate")
        verbose_name_plural = _("possible duplicates")
        constraints = [
            models.UniqueConstraint(
                fields=["customer_a", "customer_b"], name="duplicatecandidate_unique_pair"
            ),
            models.CheckConstraint(
                condition=Q(customer_a__lt=F("customer_b")), name="duplicatecandidate_ordered"
            ),
        ]
        indexes = [
            # The finder's list: best pairs first, the id breaking ties (keyset paging).
            models.Index(fields=["score", "id"], name="duplicatecandidate_score_idx"),
        ]

    def __str__(self):
        return f"{self.customer_a_id} ~ {self.customer_b_id} ({self.score})"

    def reason_labels(self):
        return [DuplicateReason(r).label for r in self.reasons if r in DuplicateReason.values]


class DuplicateDismissal(CustomerPair):
    """Two customers someone decided are different people: never proposed again."""

    id = models.BigAutoField(primary_key=True)
    dismissed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.DB_SET_NULL, related_name="+"
    )
    dismissed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = _("dismissed duplicate")
        verbose_name_plural = _("dismissed duplicates")
        constraints = [
            models.UniqueConstraint(
                fields=["customer_a", "customer_b"], name="duplicatedismissal_unique_pair"
            ),
            models.CheckConstraint(
                condition=Q(customer_a__lt=F("customer_b")), name="duplicatedismissal_ordered"
            ),
        ]

    def __str__(self):
        return f"{self.customer_a_id} ≠ {self.customer_b_id}"


class DuplicateScan(models.Model):
    """One run of the duplicate finder over every customer, with its progress."""

    class State(models.TextChoices):
        PENDING = "pending", _("Waiting")
        RUNNING = "running", _("Running")
        DONE = "done", _("Done")
        FAILED = "failed", _("Failed")

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DB_SET_NULL,
        related_name="+",
    )
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    step = models.PositiveSmallIntegerField(default=0)
    steps = models.PositiveSmallIntegerField(default=1)
    pairs = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("duplicate scan")
        verbose_name_plural = _("duplicate scans")

    def __str__(self):
        return f"{self.get_state_display()} {self.created_at:%Y-%m-%d %H:%M}"

    def get_absolute_url(self):
        return reverse("duplicates:scan", args=[self.pk])

    @property
    def finished(self):
        return self.state in (self.State.DONE, self.State.FAILED)

    @property
    def percent(self):
        if self.state == self.State.DONE:
            return 100
        return min(99, round(100 * self.step / max(1, self.steps)))

    def fail(self, error):
        DuplicateScan.objects.filter(pk=self.pk).update(
            state=self.State.FAILED, error=str(error)[:1000], finished_at=timezone.now()
        )


class Merge(models.Model):
    """One customer merged into another, with what undoing it needs.

    The rows are snapshots of the database rows (PostgreSQL's to_jsonb): encrypted columns are
    kept as the ciphertext bytes they were stored as, which stay valid because they are put back
    under the same row id. Snapshots are cleared when the merge can no longer be undone.
    """

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    # No database constraint: a survivor later merged into a third customer comes back when that
    # merge is undone, and this one must still be there to be undone after it.
    survivor = models.ForeignKey(
        Customer,
        verbose_name=_("kept customer"),
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="merges",
    )
    merged_id = models.UUIDField(_("merged customer"), db_index=True)
    merged_name = models.CharField(_("merged customer"), max_length=200)
    merged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("merged by"),
        null=True,
        on_delete=models.DB_SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(_("merged at"), default=timezone.now)
    # The survivor's version right after the merge: a later one means it was edited since.
    survivor_version = models.PositiveIntegerField()
    choices = models.JSONField(default=dict, blank=True)
    survivor_before = models.JSONField(default=dict, blank=True)
    survivor_after = models.JSONField(default=dict, blank=True)
    merged_row = models.JSONField(default=dict, blank=True)
    # {"app_label.model": [ids]} of the records moved to the survivor, and the rows removed
    # because the survivor already had their like (shares, dismissals), as snapshots.
    moved = models.JSONField(default=dict, blank=True)
    removed = models.JSONField(default=dict, blank=True)
    candidate = models.JSONField(null=True, blank=True)
    undone_at = models.DateTimeField(_("undone at"), null=True, blank=True)
    undone_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("undone by"),
        null=True,
        blank=True,
        on_delete=models.DB_SET_NULL,
        related_name="+",
    )
    snapshots_cleared_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("merge")
        verbose_name_plural = _("merges")
        indexes = [
            models.Index(fields=["survivor", "-created_at"], name="merge_survivor_idx"),
        ]

    def __str__(self):
        return f"{self.merged_name} → {self.survivor_id}"

    def get_absolute_url(self):
        return reverse("duplicates:merge_detail", args=[self.pk])


# --- end of duplicate customers ---


# Erasure records and retention rules live in a module of their own.
from customers.erasure_models import Erasure, RetentionRule  # noqa: E402,F401
