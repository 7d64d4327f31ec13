"""What a column of an imported file can hold, how its header is recognised, how a cell is read.

Every importable field has a key (a Customer field name, "owner" for a username, or
"attr:<key>" for a custom attribute), a label, and the headers it is recognised by: Chinese and
English ones, and those of the usual exports of other CRMs (Salesforce, HubSpot, Zoho). Headers
are compared after `header_key` (full-width to half-width, lower case, no spaces or
punctuation), so "E-mail", "e_mail" and "ＥＭＡＩＬ" are one header.

Cell readers turn one cell (text from a CSV file; text, a number, a date or a boolean from a
spreadsheet) into the value stored, or raise CellError with the reason shown to the user.
Nothing is guessed: a value a reader does not recognise is reported, never stored approximately.
"""

import datetime
import functools
import math
import re
import unicodedata

import phonenumbers
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator, validate_email
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from openpyxl.worksheet.formula import ArrayFormula, DataTableFormula

from customers.models import Customer, CustomField, Gender, Source, Status
from customers.phones import normalize_phone

MAX_TAGS = 20
MAX_TAG_LENGTH = 50


class CellError(ValueError):
    """A cell that cannot be stored; the message says why, for the user."""


# (key, label, headers by priority: when two columns suggest one field, the earlier header wins)
FIELDS = [
    (
        "display_name",
        gettext_lazy("Name"),
        "姓名 客户名称 客户姓名 名字 联系人 联系人姓名 客户 名称 name fullname contactname "
        "customername leadname",
    ),
    ("family_name", gettext_lazy("Family name"), "姓 姓氏 lastname surname familyname"),
    ("given_name", gettext_lazy("Given name"), "名 firstname givenname"),
    (
        "phone",
        gettext_lazy("Mobile phone"),
        "手机 手机号 手机号码 移动电话 电话 电话号码 联系电话 联系方式 mobile mobilephone "
        "mobilephonenumber mobilenumber cellphone cell phone phonenumber telephone tel phone1",
    ),
    (
        "email",
        gettext_lazy("Email"),
        "邮箱 电子邮件 电子邮箱 邮件 邮箱地址 email emailaddress mail email1",
    ),
    (
        "company",
        gettext_lazy("Company"),
        "公司 公司名称 单位 工作单位 企业 企业名称 company companyname accountname account "
        "organization organisation",
    ),
    ("job_title", gettext_lazy("Job title"), "职位 职务 头衔 岗位 title jobtitle position"),
    (
        "country",
        gettext_lazy("Country or region"),
        "国家 国家或地区 国家地区 country countryregion mailingcountry billingcountry",
    ),
    (
        "province",
        gettext_lazy("Province"),
        "省份 省 省市 省直辖市 province state stateregion stateprovince mailingstate "
        "mailingstateprovince billingstate billingstateprovince",
    ),
    ("city", gettext_lazy("City"), "城市 市 所在城市 city mailingcity billingcity"),
    ("district", gettext_lazy("District"), "区 区县 县区 district county"),
    (
        "street",
        gettext_lazy("Street address"),
        "地址 详细地址 街道地址 街道 联系地址 通讯地址 street streetaddress address address1 "
        "mailingstreet billingstreet",
    ),
    (
        "postcode",
        gettext_lazy("Postcode"),
        "邮编 邮政编码 postcode postalcode zip zipcode mailingzip mailingzippostalcode "
        "mailingpostalcode billingzip billingzippostalcode",
    ),
    ("gender", gettext_lazy("Gender"), "性别 gender sex"),
    (
        "birthday",
        gettext_lazy("Birthday"),
        "生日 出生日期 出生年月日 birthday birthdate dateofbirth dob",
    ),
    ("tags", gettext_lazy("Tags"), "标签 客户标签 tags tag labels"),
    (
        "notes",
        gettext_lazy("Notes"),
        "备注 说明 描述 notes note description comments comment remarks",
    ),
    (
        "source",
        gettext_lazy("Source channel"),
        "来源 客户来源 来源渠道 渠道 source leadsource originalsource",
    ),
    (
        "status",
        gettext_lazy("Status"),
        "状态 客户状态 status leadstatus lifecyclestage contactstatus",
    ),
    (
        "external_id",
        gettext_lazy("External ID"),
        "客户编号 客户id 外部编号 外部id 编号 externalid customerid contactid recordid leadid "
        "customerno customernumber",
    ),
    (
        "owner",
        gettext_lazy("Owner (username)"),
        "负责人 所有者 归属人 跟进人 owner ownerusername contactowner leadowner recordowner "
        "assignedto",
    ),
]
FIELD_KEYS = [key for key, _label, _headers in FIELDS]
# Stored encrypted (customers.fields): written as ciphertexts bound to the row.
ENCRYPTED = ("email", "phone", "birthday", "street")
# The most characters each text field holds (the database's limits).
MAX_LENGTHS = {
    f.name: f.max_length
    for f in Customer._meta.concrete_fields
    if f.name in FIELD_KEYS and getattr(f, "max_length", None)
}
MAX_LENGTHS.pop("phone", None)
MAX_LENGTHS.pop("email", None)


def header_key(header):
    """A header as compared with the known ones: "E-mail Address" -> "emailaddress"."""
    text = unicodedata.normalize("NFKC", str(header or "")).lower()
    return "".join(c for c in text if c.isalnum())


@functools.cache
def _known_headers():
    known = {}
    for key, _label, headers in FIELDS:
        for rank, header in enumerate(headers.split()):
            known.setdefault(header_key(header), (key, rank))
    return known


def target_choices(custom_fields):
    """(key, label) of every field a column can be imported into, for the mapping form."""
    choices = [(key, str(label)) for key, label, _headers in FIELDS]
    choices += [(f"attr:{f.key}", f.display_label) for f in custom_fields]
    return choices


def suggest(headers, custom_fields, saved=None):
    """{column number: field key} suggested for the headers of a file.

    A saved mapping ({header_key: field key}) is followed first; then headers known for a field,
    then custom attributes by key or label. Each field gets at most one column: the one whose
    header is the field's most usual name.
    """
    saved = saved or {}
    known = _known_headers()
    for definition in custom_fields:
        for name in (definition.key, definition.label, definition.label_en):
            if name:
                known.setdefault(header_key(name), (f"attr:{definition.key}", -1))
    valid = {key for key, _label in target_choices(custom_fields)}
    best = {}  # field key -> (rank, column)
    for column, header in enumerate(headers):
        key = header_key(header)
        if saved.get(key) in valid:
            field, rank = saved[key], -2
        elif key in known:
            field, rank = known[key]
        else:
            continue
        if field not in best or rank < best[field][0]:
            best[field] = (rank, column)
    return {column: field for field, (_rank, column) in best.items()}


# Cell readers ------------------------------------------------------------------------------

_SPACES = re.compile(r"\s+")
_DATE_PATTERNS = [
    re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})"),
    re.compile(r"(\d{4})/(\d{1,2})/(\d{1,2})"),
    re.compile(r"(\d{4})年(\d{1,2})月(\d{1,2})日"),
]
# 13900139000, 139 0013 9000, 139-0013-9000, +86 139 0013 9000, +8613900139000, 0086...
_MOBILE_WRITTEN = re.compile(r"(?:(\+86|0086)[ -]?)?(1\d\d)[ -]?(\d{4})[ -]?(\d{4})", re.ASCII)


def cell_text(value):
    """A cell as text: spreadsheet numbers without a trailing .0, dates as YYYY-MM-DD."""
    if value is None:
        return ""
    if type(value) is str:
        # PostgreSQL text cannot hold NUL; nothing a person typed contains one.
        return value.strip().replace("\x00", "")
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime.datetime):
        if value.time() == datetime.time():
            return value.date().isoformat()
        return value.isoformat(sep=" ")
    if isinstance(value, datetime.date):
        return value.isoformat()
    # A formula is read as its text; openpyxl gives array and data-table formulas as objects.
    if isinstance(value, ArrayFormula):
        return (value.text or "").strip()
    if isinstance(value, DataTableFormula):
        return f"=TABLE({value.r1 or ''},{value.r2 or ''})"
    return str(value).strip()


def read_text(field):
    limit = MAX_LENGTHS.get(field)

    def read(value):
        text = _SPACES.sub(" ", cell_text(value)) if field != "notes" else cell_text(value)
        if limit and len(text) > limit:
            raise CellError(
                _("Longer than %(max)d characters (%(length)d).")
                % {"max": limit, "length": len(text)}
            )
        return text

    return read


def read_date(value):
    if isinstance(value, datetime.datetime):
        return value.date()
    if isinstance(value, datetime.date):
        return value
    text = cell_text(value)
    for pattern in _DATE_PATTERNS:
        if match := pattern.fullmatch(text):
            try:
                return datetime.date(*(int(part) for part in match.groups()))
            except ValueError:
                break
    raise CellError(_("Not a date: write it as 2024-03-15, 2024/3/15 or 2024年3月15日."))


def read_birthday(value):
    return birthday_reader(timezone.localdate())(value)


def birthday_reader(today):
    """The reader of birthdays up to `today` (an import reads its date once, not per row)."""
    earliest = datetime.date(1900, 1, 1)

    def read(value):
        birthday = read_date(value)
        if not earliest <= birthday <= today:
            raise CellError(_("A birthday must be between 1900 and today."))
        return birthday

    return read


# The usual address (a dot-atom local part, a host name) as one pattern built from the parts of
# Django's own validator, so that whatever it accepts, the validator accepts too; anything else
# (quoted local parts, address literals, "localhost") is left to the validator.
_COMMON_EMAIL = re.compile(
    r"[-!#$%&'*+/=?^_`{}|~0-9A-Z]+(?:\.[-!#$%&'*+/=?^_`{}|~0-9A-Z]+)*@"
    + EmailValidator.hostname_re
    + EmailValidator.domain_re
    + EmailValidator.tld_no_fqdn_re,
    re.IGNORECASE,
)


def read_email(value):
    email = cell_text(value).lower()
    # Without an @ the validator refuses it too, at the cost of an exception.
    if len(email) > 254 or "@" not in email:
        raise CellError(_("Not a valid email address."))
    if _COMMON_EMAIL.fullmatch(email):
        return email
    try:
        validate_email(email)
    except ValidationError:
        raise CellError(_("Not a valid email address.")) from None
    return email


@functools.cache
def _china_mobile():
    """The national-number pattern phonenumbers uses for Chinese mobile numbers."""
    metadata = phonenumbers.PhoneMetadata.metadata_for_region("CN")
    return re.compile(metadata.mobile.national_number_pattern)


def china_mobile(raw, home=None):
    """The E.164 form of a Chinese mobile number written the usual way, else None.

    Most numbers in a Chinese list are mobile numbers: 11 ASCII digits, perhaps after +86 (or
    0086 where the default region is China), perhaps grouped 3-4-4 by a space or a dash. Those
    are recognised by phonenumbers' own pattern for Chinese mobile numbers, far faster than
    parsing them; anything else (None) is for `normalize_phone`, which gives the same answer.
    """
    if home is None:
        home = settings.PHONE_DEFAULT_REGION == "CN"
    if len(raw) == 11 and raw.isdigit() and raw.isascii():
        if not home:
            return None
        national = raw
    else:
        match = _MOBILE_WRITTEN.fullmatch(raw)
        if match is None:
            return None
        prefix = match[1]
        if not (prefix == "+86" or home):
            return None
        national = match[2] + match[3] + match[4]
    return "+86" + national if _china_mobile().fullmatch(national) else None


def read_phone(value):
    return phone_reader()(value)


def phone_reader():
    """The reader of phone numbers, for the default region of now (read once, not per row)."""
    region = settings.PHONE_DEFAULT_REGION
    home = region == "CN"

    def read(value):
        raw = cell_text(value)
        phone = china_mobile(raw, home) or normalize_phone(raw, region)
        if phone is None:
            raise CellError(_("Not a valid phone number."))
        return phone

    return read


def read_tags(value):
    text = cell_text(value).replace("，", ",").replace(";", ",").replace("；", ",")
    tags = list(dict.fromkeys(t.strip() for t in text.split(",") if t.strip()))
    if len(tags) > MAX_TAGS:
        raise CellError(_("At most %(max)d tags.") % {"max": MAX_TAGS})
    if any(len(tag) > MAX_TAG_LENGTH for tag in tags):
        raise CellError(
            _("A tag can be at most %(max)d characters long.") % {"max": MAX_TAG_LENGTH}
        )
    return tags


def _choice_names(choices):
    """{lower-case label or stored value: stored value} in English and Chinese."""
    names = {}
    for language in ("en", "zh-hans"):
        with translation.override(language):
            for value, label in choices.choices:
                names[str(label).strip().lower()] = value
    for value in choices.values:
        if value:
            names[value.lower()] = value
    return names


def read_choice(choices, what):
    names = _choice_names(choices)

    def read(value):
        text = cell_text(value).lower()
        if text not in names:
            raise CellError(_("Unknown %(what)s “%(value)s”.") % {"what": what, "value": text})
        return names[text]

    return read


def read_country(value):
    from customers.places import COUNTRIES

    text = cell_text(value)
    codes = {code for code, _label in COUNTRIES}
    if text.upper() in codes:
        return text.upper()
    for language in ("en", "zh-hans"):
        with translation.override(language):
            for code, label in COUNTRIES:
                if str(label).lower() == text.lower():
                    return code
    raise CellError(_("Unknown country or region “%(value)s”.") % {"value": text})


_TRUE = {"true", "yes", "y", "1", "是", "对", "有"}
_FALSE = {"false", "no", "n", "0", "否", "不", "无"}


def read_attribute(definition):
    """The reader of a custom attribute: the JSON value CustomField.validate_json accepts."""
    Type = CustomField.Type

    def convert(value):
        if definition.type == Type.BOOLEAN:
            if isinstance(value, bool):
                return value
            text = cell_text(value).lower()
            if text in _TRUE:
                return True
            if text in _FALSE:
                return False
            raise CellError(_("Write yes or no (是 or 否)."))
        if definition.type == Type.NUMBER:
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                number = value
            else:
                try:
                    number = float(cell_text(value).replace(",", ""))
                except ValueError:
                    raise CellError(_("Not a number.")) from None
            if isinstance(number, int):
                return number
            # float() reads "nan", "inf" and 1e999, which JSON (and so PostgreSQL) cannot hold.
            if not math.isfinite(number):
                raise CellError(_("Not a number."))
            return int(number) if number.is_integer() else number
        if definition.type == Type.DATE:
            return read_date(value).isoformat()
        if definition.type == Type.MULTI_CHOICE:
            return sorted(read_tags(value))
        return cell_text(value)

    def read(value):
        converted = convert(value)
        try:
            definition.validate_json(converted)
        except ValidationError as error:
            raise CellError(" ".join(error.messages)) from None
        return converted

    return read


def reader(field, custom_fields):
    """The cell reader of a field key."""
    if field.startswith("attr:"):
        definition = next(f for f in custom_fields if f"attr:{f.key}" == field)
        return read_attribute(definition)
    return {
        "email": read_email,
        "phone": phone_reader(),
        "birthday": birthday_reader(timezone.localdate()),
        "tags": read_tags,
        "country": read_country,
        "gender": read_choice(Gender, _("gender")),
        "status": read_choice(Status, _("status")),
        "source": read_choice(Source, _("source channel")),
    }.get(field) or read_text(field)


def field_label(field, custom_fields):
    for key, label, _headers in FIELDS:
        if key == field:
            return str(label)
    for definition in custom_fields:
        if field == f"attr:{definition.key}":
            return definition.display_label
    return field
