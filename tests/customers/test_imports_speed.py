"""The import engine's fast paths give exactly what the general code gives, and its pipeline
(a reading thread, COPY straight into the table, merged GIN pending lists) keeps every
guarantee: same values, same problems in the user's language, one transaction."""

import datetime
import random
import threading

import pytest
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import connection
from django.utils import timezone, translation

from customers import import_fields, imports, search
from customers.import_fields import CellError, cell_text
from customers.models import Customer
from customers.phones import normalize_phone
from tests.customers.import_helpers import HEADERS, csv_bytes, make_import, run_import

pytestmark = pytest.mark.django_db

GOOD = ["王芳", "13900139000", "Wang@Example.com", "1990-01-02", "星光科技", "Lead", "女", "门店", "VIP，新客", "C1"]  # fmt: skip  # noqa: E501


def row(**changes):
    values = dict(zip(HEADERS, GOOD, strict=True))
    values.update(changes)
    return [values[h] for h in HEADERS]


# Fast paths -------------------------------------------------------------------------------


def _written_phones(rng, count):
    """Phone numbers as people and spreadsheets write them, and many ways they go wrong."""
    separators = [" ", "-", "(", ")", ".", "  ", "\t", "\u3000", "－", "/", "+", "", "", ""]
    prefixes = ["", "", "+86", "0086", "86", "+86 ", "+86-", "0086-", "(+86)", "+", "0", "+1 "]
    for _ in range(count):
        digits = "1" + "".join(rng.choice("0123456789") for _ in range(rng.choice([9, 10, 10, 11])))
        if rng.random() < 0.4:
            # Grouped 3-4-4, the way most lists write them.
            groups = (digits[:3], digits[3:7], digits[7:])
            text = rng.choice(prefixes) + rng.choice(["", " ", "-"]).join(groups)
        else:
            text = rng.choice(prefixes)
            for digit in digits:
                text += digit + (rng.choice(separators) if rng.random() < 0.15 else "")
        if rng.random() < 0.05:
            text = text.replace("3", "３")  # full-width digits, which phonenumbers reads
        yield text


@pytest.mark.parametrize("region", ["CN", "US"])
def test_the_mobile_fast_path_gives_what_phonenumbers_gives(settings, region):
    settings.PHONE_DEFAULT_REGION = region
    read = import_fields.phone_reader()
    fast = 0
    for text in _written_phones(random.Random(7), 20_000):
        raw = cell_text(text)
        expected = normalize_phone(raw)
        quick = import_fields.china_mobile(raw, region == "CN")
        fast += quick is not None
        if quick is not None:
            assert quick == expected, text
        try:
            assert read(text) == expected, text
        except CellError:
            assert expected is None, text
    assert fast > 500  # the fast path is taken, and so tested


def _addresses(rng, count):
    pieces = list("abz09._-+@\"\\ []()!#$%&'*/=?^`{}|~:;,<>") + [
        "ſ", "K", "é", "张", "\u00a1", "xn--", "..", "@@", "localhost", "[1.2.3.4]", "[::1]",
        "com", "cn", "\t", "\u200b", "中国",
    ]  # fmt: skip
    for _ in range(count):
        if rng.random() < 0.5:
            yield "".join(rng.choice(pieces) for _ in range(rng.randint(1, 20)))
        else:
            local = "".join(rng.choice('abz09._-+é"') for _ in range(rng.randint(0, 8)))
            host = "".join(rng.choice("abz09-.张éK") for _ in range(rng.randint(0, 12)))
            tld = rng.choice([".com", ".cn", ".c", ".xn--abc", "", ".中国", ".-a", "."])
            yield f"{local}@{host}{tld}"


def test_the_email_fast_path_accepts_only_what_django_accepts():
    accepted = 0
    for text in _addresses(random.Random(11), 30_000):
        email = cell_text(text).lower()
        try:
            validate_email(email)
            expected = email if len(email) <= 254 else None
        except ValidationError:
            expected = None
        try:
            got = import_fields.read_email(text)
        except CellError:
            got = None
        assert got == expected, text
        accepted += got is not None
    assert accepted > 1_000


def test_birthdays_are_checked_against_the_day_the_reader_was_made():
    today = timezone.localdate()
    read = import_fields.birthday_reader(today)
    for text in ["1899-12-31", "1900-01-01", "1990/3/4", today.isoformat(), "2100年1月1日"]:
        try:
            expected = import_fields.read_birthday(text)
        except CellError as error:
            with pytest.raises(CellError, match=str(error)):
                read(text)
        else:
            assert read(text) == expected
    tomorrow = today + datetime.timedelta(days=1)
    with pytest.raises(CellError):
        read(tomorrow.isoformat())


def test_array_literals_quote_only_what_needs_it():
    def reference(values):
        values = [v.replace("\\", "\\\\").replace('"', '\\"') for v in values]
        return "{" + ",".join(f'"{v}"' for v in values) + "}"

    cases = [[], [""], ["a"], ["VIP", "新客"], ['a"b', "c\\d"], ['x","y'], ['"', '"'], ["\\"]]
    for values in cases:
        assert imports.pg_array(values) == reference(values)


NAMES = [
    ("王芳", "", "", "星光科技"),
    ("曾伟", "曾", "伟", "曾伟"),  # a family name of two readings; the company is the name
    ("", "张", "伟", ""),
    ("John Smith", "Smith", "John", "Acme Ltd."),
    ("O'Neil  Li", "", "", "王芳"),
    ("欧阳娜娜", "欧阳", "娜娜", "北京欧阳科技有限公司"),
    ("Ａｂｃ　李", "", "", "abc"),
    ("李", "李", "", "李李李"),
    ("a\\b", "", "", 'c"d'),
]


@pytest.mark.parametrize(("display_name", "family", "given", "company"), NAMES)
def test_cached_search_columns_are_what_search_fields_computes(
    manager, display_name, family, given, company
):
    importer = imports.Importer(make_import(manager, csv_bytes([row()])))
    name = display_name or Customer.name_from_parts(family, given)
    expected = search.search_fields(
        display_name=name, family_name=family, given_name=given, company=company
    )
    for _twice in range(2):  # computed, then from the cache
        pinyin, text, keys = importer._search_columns(name, family, given, company)
        assert (pinyin, text, keys) == (
            expected["name_pinyin"],
            expected["search_text"],
            imports.pg_array(expected["search_keys"]),
        )


def test_text_that_copy_escapes_is_stored_exactly(manager):
    notes = "第一行\n第二行\tTab\\反斜杠\r结束"
    content = csv_bytes(
        [row(姓名="王\\芳", 公司="A\\B 公司", 标签='引"号,反\\斜', 客户编号="C\\1")]
    )
    _job, outcome = run_import(manager, content)
    assert outcome.created == 1
    customer = Customer.objects.get()
    assert (customer.display_name, customer.company, customer.external_id) == (
        "王\\芳", "A\\B 公司", "C\\1"
    )  # fmt: skip
    assert customer.tags == ['引"号', "反\\斜"]
    assert (
        customer.search_text
        == search.search_fields(display_name="王\\芳", company="A\\B 公司")["search_text"]
    )

    run_import(manager, csv_bytes([["李娜", notes]], headers=["姓名", "备注"]))
    assert Customer.objects.get(display_name="李娜").notes == notes.strip()


def test_created_customers_have_what_saving_them_computes(manager):
    rows = [
        row(),
        row(姓名="李娜", 手机="+86 137 0013 7000", 邮箱="", 生日="", 公司="", 客户编号="C2"),
    ]
    content = csv_bytes(rows)
    run_import(manager, content)
    first = Customer.objects.get(external_id="C1")
    fields = search.search_fields(display_name="王芳", company="星光科技")
    assert (first.name_pinyin, first.search_text, first.search_keys) == (
        fields["name_pinyin"], fields["search_text"], fields["search_keys"]
    )  # fmt: skip
    assert (bytes(first.email_index), bytes(first.phone_index)) == (
        search.email_index("wang@example.com"),
        search.phone_indexes("+8613900139000")[0],
    )
    assert bytes(first.phone_last4_index) == search.phone_indexes("+8613900139000")[1]
    # Encrypted values open with the row's own id (they are bound to it).
    assert (first.email, first.phone, str(first.birthday)) == (
        "wang@example.com", "+8613900139000", "1990-01-02"
    )  # fmt: skip
    second = Customer.objects.get(external_id="C2")
    assert (second.phone, second.email, second.birthday, second.version) == (
        "+8613700137000", "", None, 1
    )  # fmt: skip


# The pipeline -----------------------------------------------------------------------------


def test_problems_are_written_in_the_language_of_whoever_runs_the_import(manager, settings):
    settings.LANGUAGE_CODE = "zh-hans"
    content = csv_bytes([row(), row(手机="12345", 客户编号="C2")])
    with translation.override("en"):
        job, outcome = run_import(manager, content)
    assert outcome.failed == 1
    assert job.preview["problems"][0]["reason"] == "Not a valid phone number."
    with translation.override("zh-hans"):
        job, outcome = run_import(manager, csv_bytes([row(手机="12345", 客户编号="C3")]))
    assert job.preview["problems"][0]["reason"] == "手机号无效。"


def test_a_customer_saved_while_its_batch_is_copied_fails_its_row_not_the_import(
    manager, monkeypatch, english
):
    # Saved after the batch was matched: the lookup does not see it, the COPY does.
    Customer.objects.create(display_name="先到", phone="+8613900139000")
    monkeypatch.setattr(imports.Importer, "_match", lambda self, batch, keys=None: {})
    rows = [row(), row(姓名="乙", 手机="13700137000", 邮箱="", 客户编号="C2")]

    job, outcome = run_import(manager, csv_bytes(rows))

    assert (job.state, outcome.created, outcome.failed) == ("done", 1, 1)
    assert Customer.objects.get(external_id="C2").display_name == "乙"
    assert (
        Customer.objects.get(phone_index=search.phone_indexes("+8613900139000")[0]).display_name
        == "先到"
    )  # noqa: E501
    assert "while the file was being imported" in job.preview["problems"][0]["reason"]
    assert job.preview["counts"]["created"] == 1


def test_a_failure_while_writing_stops_the_reading_thread(manager, monkeypatch):
    rows = [row(姓名=f"客户{i}", 手机=f"139{i:08d}", 邮箱="", 客户编号=f"C{i}") for i in range(40)]
    job = make_import(manager, csv_bytes(rows))

    def crash(self, batch):
        raise RuntimeError("database gone")

    monkeypatch.setattr(imports.Importer, "_insert", crash)
    with pytest.raises(RuntimeError):
        imports.Importer(job, batch_rows=5).run(dry_run=True)
    names = {thread.name for thread in threading.enumerate()}
    assert "customer-import-reader" not in names
    assert "customer-import-index-cleaner" not in names
    assert Customer.objects.count() == 0


def _pending_pages(index):
    with connection.cursor() as cursor:
        cursor.execute("SELECT gin_clean_pending_list(%s::regclass)", [index])
        return cursor.fetchone()[0]


def test_the_import_merges_the_pending_lists_it_leaves(manager, monkeypatch):
    rows = [
        row(姓名=f"客户{i}号", 手机=f"139{i:08d}", 邮箱="", 公司=f"第{i}公司", 客户编号=f"C{i}")
        for i in range(60)
    ]
    _pending_pages("customer_search_text_idx")  # whatever earlier tests left
    # Left for later when few rows were written ...
    run_import(manager, csv_bytes(rows[:30]))
    assert _pending_pages("customer_search_text_idx") > 0
    # ... and merged, on the cleaner's own connection, when enough were.
    monkeypatch.setattr(imports, "CLEAN_AFTER_ROWS", 10)
    job, outcome = run_import(manager, csv_bytes(rows[30:]))
    assert outcome.created == 30
    assert _pending_pages("customer_search_text_idx") == 0
    assert _pending_pages("customer_search_keys_idx") == 0
    # Searches found them all along.
    assert Customer.objects.search("第45公司").get().external_id == "C45"
