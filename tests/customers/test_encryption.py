"""Phone, email, birthday and street are encrypted at rest, and still found by exact value."""

import datetime
import io
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import FieldError, ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from cims import crypto
from customers import demo, search
from customers.fields import Sealed
from customers.forms import CustomerForm
from customers.management.commands import seed_demo
from customers.models import Customer

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]

TABLE = Customer._meta.db_table
ENCRYPTED = ("phone", "email", "birthday", "street")
CANARY = {
    "phone": "+8613912344711",
    "email": "canary.bird@example.org",
    "street": "金丝雀路47号",
    "birthday": datetime.date(1987, 6, 5),
}
# What would give the canary away in a dump: any form of each value (not hex-like, so that no
# ciphertext spells one by chance).
CANARY_TRACES = [
    "13912344711",
    "139 1234 4711",
    "canary.bird",
    "canary",
    "example.org",
    "金丝雀路",
    "1987-06-05",
    "19870605",
    "05/06/1987",
]


def rows_as_text():
    """Every customer row as PostgreSQL prints it, as pg_dump would write it."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT t::text FROM {TABLE} AS t")
        return "\n".join(row for (row,) in cursor.fetchall())


def raw(pk, column):
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {TABLE} WHERE id = %s", [pk])
        value = cursor.fetchone()[0]
    return None if value is None else bytes(value)


def key_versions():
    """{column: set of key versions} over every stored value, read from the headers in SQL."""
    with connection.cursor() as cursor:
        return {
            column: {
                version
                for (version,) in _fetch(
                    cursor, f"SELECT DISTINCT get_byte({column}, 1) FROM {TABLE}"
                )
                if version is not None
            }
            for column in ENCRYPTED
        }


def _fetch(cursor, sql):
    cursor.execute(sql)
    return cursor.fetchall()


@pytest.fixture
def canary(make_customer):
    return make_customer("黄鹂", **CANARY)


@pytest.fixture
def keys(settings):
    """Two known keys, version 1 only at first; `keys.add_second()` adds version 2."""
    first, second = crypto.new_key(), crypto.new_key()
    settings.FIELD_ENCRYPTION_KEYS = f"1:{first}"
    settings.BLIND_INDEX_KEY = crypto.new_key()

    class Keys:
        @staticmethod
        def add_second():
            settings.FIELD_ENCRYPTION_KEYS = f"1:{first}, 2:{second}"

    yield Keys
    crypto.reset()


# At rest -----------------------------------------------------------------------------------


def test_the_customers_table_holds_no_sensitive_value_in_clear(canary):
    dump = rows_as_text()
    assert canary.pk.hex[:8] in dump.replace("-", "")
    for trace in CANARY_TRACES:
        assert trace not in dump, trace
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT search_text, search_keys::text FROM {TABLE} WHERE id = %s", [canary.pk]
        )
        search_text, search_keys = cursor.fetchone()
    assert "黄鹂" in search_text  # names stay searchable in clear
    assert "@" not in search_text + search_keys


def test_each_value_is_a_ciphertext_naming_its_key_version(canary):
    for column in ENCRYPTED:
        blob = raw(canary.pk, column)
        assert blob[0] == crypto.FORMAT
        assert blob[1] == crypto.current_version()
        plaintext = Customer._meta.get_field(column).encode(CANARY[column])
        assert len(blob) == 2 + 12 + len(plaintext) + 16


def test_equal_values_encrypt_differently_and_empty_values_are_null(make_customer):
    first = make_customer("甲", street="人民路1号")
    second = make_customer("乙", street="人民路1号", email="")
    assert raw(first.pk, "street") != raw(second.pk, "street")
    assert raw(second.pk, "email") is None
    assert raw(second.pk, "birthday") is None
    second.refresh_from_db()
    assert (second.email, second.birthday, second.street) == ("", None, "人民路1号")


def test_values_read_back_as_plaintext_of_their_types(canary):
    customer = Customer.objects.get(pk=canary.pk)
    assert {field: getattr(customer, field) for field in ENCRYPTED} == CANARY


def test_a_list_decrypts_only_the_fields_it_shows(canary):
    customer = Customer.objects.only("id", "display_name", "phone", "email").get(pk=canary.pk)
    assert type(customer.__dict__["phone"]) is Sealed
    assert customer.phone == CANARY["phone"]
    assert customer.__dict__["phone"] == CANARY["phone"]
    assert type(customer.__dict__["email"]) is Sealed
    assert "street" not in customer.__dict__


# Tampering ---------------------------------------------------------------------------------


def test_a_ciphertext_copied_to_another_row_does_not_decrypt(canary, make_customer):
    other = make_customer("乙", phone="+8613700001111")
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {TABLE} SET phone = (SELECT phone FROM {TABLE} WHERE id = %s) WHERE id = %s",
            [canary.pk, other.pk],
        )
    field = Customer._meta.get_field("phone")
    with pytest.raises(crypto.DecryptionError, match=rf"customers_customer\.phone\.{other.pk}"):
        field.open(raw(other.pk, "phone"), other.pk)
    other = Customer.objects.get(pk=other.pk)
    assert other.phone == ""
    assert other.unreadable_fields() == ["phone"]


def test_a_ciphertext_copied_to_another_column_does_not_decrypt(canary):
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {TABLE} SET street = email WHERE id = %s", [canary.pk])
    customer = Customer.objects.get(pk=canary.pk)
    assert customer.street == ""
    assert customer.email == CANARY["email"]
    assert customer.unreadable_fields() == ["street"]


def test_an_altered_ciphertext_does_not_decrypt():
    aad = crypto.row_aad(TABLE, "email", "x")
    blob = bytearray(crypto.encrypt("a@example.com", aad))
    blob[-1] ^= 1
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt(bytes(blob), aad)
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt(b"\x01\x01short", aad)


def test_the_page_of_a_customer_with_an_unreadable_value_still_opens(staff_client, customer):
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {TABLE} SET phone = email WHERE id = %s", [customer.pk])
    response = staff_client.get(f"/customers/{customer.pk}/")
    assert response.status_code == 200
    assert "+8613800138000" not in response.content.decode()


def test_saving_other_fields_keeps_an_unreadable_ciphertext(canary, make_customer):
    other = make_customer("乙")
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {TABLE} SET phone = (SELECT phone FROM {TABLE} WHERE id = %s) WHERE id = %s",
            [canary.pk, other.pk],
        )
    copied = raw(other.pk, "phone")
    other = Customer.objects.get(pk=other.pk)
    assert other.phone == ""
    other.company = "Changed"
    other.save()
    assert raw(other.pk, "phone") == copied


def test_saving_keeps_an_unreadable_ciphertext_under_an_older_key(keys, make_customer):
    first, second = make_customer("甲", phone="+8613800138000"), make_customer("乙")
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {TABLE} SET phone = (SELECT phone FROM {TABLE} WHERE id = %s) WHERE id = %s",
            [first.pk, second.pk],
        )
    copied = raw(second.pk, "phone")
    keys.add_second()
    second = Customer.objects.get(pk=second.pk)
    second.company = "Changed"
    second.save()
    assert raw(second.pk, "phone") == copied
    assert second.unreadable_fields() == ["phone"]


def test_a_value_under_a_retired_key_is_a_configuration_error(keys, make_customer):
    customer = make_customer(phone="+8613800138000")
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {TABLE} SET phone = set_byte(phone, 1, 9) WHERE id = %s", [customer.pk]
        )
    with pytest.raises(crypto.MissingKeyError, match="key version 9"):
        Customer.objects.get(pk=customer.pk).phone  # noqa: B018


# Finding customers -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "typed", ["zhang.wei@example.com", "ZHANG.WEI@Example.COM", " Zhang.Wei@example.com "]
)
def test_customer_is_found_by_email_in_any_case(customer, typed):
    assert list(Customer.objects.with_email(typed)) == [customer]
    assert list(Customer.objects.search(typed)) == [customer]


@pytest.mark.parametrize(
    "typed", ["+8613800138000", "138 0013 8000", "+86 13800138000", "13800138000", "138-0013-8000"]
)
def test_customer_is_found_by_phone_in_any_format(customer, typed):
    assert list(Customer.objects.with_phone(typed)) == [customer]
    assert list(Customer.objects.search(typed)) == [customer]


def test_customers_are_found_by_the_last_four_digits_of_their_phone(customer, make_customer):
    same_ending = make_customer("乙", phone="+8613912348000")
    make_customer("丙", phone="+8613912348001")
    make_customer("丁", street="8000号")
    assert set(Customer.objects.with_phone_ending("8000")) == {customer, same_ending}
    assert set(Customer.objects.search("8000")) == {customer, same_ending}


def test_nothing_matches_an_empty_or_malformed_value(customer, make_customer):
    make_customer("甲")
    assert not Customer.objects.with_email("").exists()
    assert not Customer.objects.with_phone("").exists()
    assert not Customer.objects.with_phone("not a number").exists()
    assert not Customer.objects.with_phone_ending("800").exists()


def test_equal_strings_in_different_columns_have_different_indexes():
    assert crypto.blind_index("8000", "phone") != crypto.blind_index("8000", "phone_last4")
    assert crypto.blind_index("8000", "phone") == crypto.blind_index("8000", "phone")


def test_encrypted_fields_refuse_lookups_other_than_isnull(customer):
    with pytest.raises(FieldError, match="encrypted"):
        Customer.objects.filter(email="zhang.wei@example.com").exists()
    with pytest.raises(FieldError, match="encrypted"):
        Customer.objects.filter(phone__endswith="8000").exists()
    with pytest.raises(FieldError, match="encrypted"):
        Customer.objects.filter(birthday__year=1990).exists()
    assert Customer.objects.filter(street__isnull=True).get() == customer
    with pytest.raises(TypeError, match="encrypted"):
        Customer.objects.update(street="人民路1号")


def test_form_refuses_the_email_of_another_customer_in_another_case(staff, customer):
    form = CustomerForm(data=form_data(email="ZHANG.Wei@Example.com"), user=staff)
    assert not form.is_valid()
    assert form.has_error("email", code="duplicate")


def test_form_refuses_the_phone_of_another_customer_in_another_format(staff, customer):
    form = CustomerForm(data=form_data(phone="+86 138-0013-8000"), user=staff)
    assert not form.is_valid()
    assert form.has_error("phone", code="duplicate")


def test_form_edits_a_customer_keeping_its_own_email_and_phone(staff, customer):
    data = form_data(email=customer.email, phone="138 0013 8000", version=customer.version)
    form = CustomerForm(data=data, instance=customer, user=staff)
    assert form.is_valid(), form.errors
    form.save()
    customer = Customer.objects.get(pk=customer.pk)
    assert (customer.phone, customer.email) == ("+8613800138000", "zhang.wei@example.com")
    assert list(Customer.objects.with_phone("13800138000")) == [customer]


def test_duplicate_hint_finds_the_customer_by_email_or_phone(staff_client, customer):
    for params in ({"email": "Zhang.Wei@example.com"}, {"phone": "138 0013 8000"}):
        response = staff_client.get("/customers/duplicates/", params)
        assert response.status_code == 200
        assert customer in response.context["matches"]


def form_data(**fields):
    return {"display_name": "王芳", "status": "lead", "source": "store", "country": "CN", **fields}


# Normalisation and indexes -----------------------------------------------------------------


def test_saving_normalises_email_and_phone_and_keeps_the_indexes_in_step(make_customer):
    customer = make_customer(email="Wang.Fang@Example.com", phone="139 1234 5678")
    assert (customer.email, customer.phone) == ("wang.fang@example.com", "+8613912345678")
    assert customer.email_index == search.email_index("wang.fang@example.com")
    customer = Customer.objects.get(pk=customer.pk)
    customer.phone = "+8613700001111"
    customer.save(update_fields=["phone"])
    assert list(Customer.objects.with_phone("137 0000 1111")) == [customer]
    assert list(Customer.objects.with_phone_ending("1111")) == [customer]
    assert not Customer.objects.with_phone("139 1234 5678").exists()


def test_bulk_created_customers_are_encrypted_and_indexed_like_saved_ones(db):
    Customer.objects.bulk_create(
        [Customer(display_name="甲", email="Jia@Example.com", phone="139 1234 0001")]
    )
    customer = Customer.objects.with_email("jia@example.com").get()
    assert customer.phone == "+8613912340001"
    assert list(Customer.objects.with_phone_ending("0001")) == [customer]


# Keys --------------------------------------------------------------------------------------


def test_rotate_keys_re_encrypts_every_value_with_the_newest_key(keys, make_customer):
    customers = [make_customer(f"客户{i}", **canary_like(i)) for i in range(5)]
    assert key_versions() == {column: {1} for column in ENCRYPTED}
    keys.add_second()
    with pytest.raises(CommandError):
        call_command("rotate_keys", "--check", stdout=io.StringIO())
    output = io.StringIO()
    call_command("rotate_keys", "--batch-size", "2", stdout=output)
    assert "5 rows re-encrypted" in output.getvalue()
    assert key_versions() == {column: {2} for column in ENCRYPTED}
    for before in customers:
        after = Customer.objects.get(pk=before.pk)
        assert [getattr(after, f) for f in ENCRYPTED] == [getattr(before, f) for f in ENCRYPTED]
    assert list(Customer.objects.with_email(customers[3].email)) == [customers[3]]
    call_command("rotate_keys", "--check", stdout=io.StringIO())


def test_rotate_keys_stopped_midway_finishes_when_run_again(keys, make_customer):
    for i in range(5):
        make_customer(f"客户{i}", **canary_like(i))
    keys.add_second()
    call_command("rotate_keys", "--batch-size", "1", "--limit", "2", stdout=io.StringIO())
    with connection.cursor() as cursor:
        versions = dict(
            _fetch(cursor, f"SELECT get_byte(phone, 1), count(*) FROM {TABLE} GROUP BY 1")
        )
    assert versions == {1: 3, 2: 2}
    # Everything stays readable meanwhile, under either key.
    assert {c.phone for c in Customer.objects.all()} == {canary_like(i)["phone"] for i in range(5)}
    call_command("rotate_keys", "--batch-size", "1", stdout=io.StringIO())
    assert key_versions() == {column: {2} for column in ENCRYPTED}


def test_rotate_keys_failing_in_a_batch_keeps_the_batches_before_it(
    keys, make_customer, monkeypatch
):
    for i in range(4):
        make_customer(f"客户{i}", **canary_like(i))
    keys.add_second()
    encrypt, calls = crypto.encrypt, []

    def failing_encrypt(plaintext, aad):
        calls.append(aad)
        if len(calls) == 10:  # in the third row, the third batch of one
            raise RuntimeError("power cut")
        return encrypt(plaintext, aad)

    monkeypatch.setattr(crypto, "encrypt", failing_encrypt)
    with pytest.raises(RuntimeError):
        call_command("rotate_keys", "--batch-size", "1", stdout=io.StringIO())
    with connection.cursor() as cursor:
        versions = dict(
            _fetch(cursor, f"SELECT get_byte(email, 1), count(*) FROM {TABLE} GROUP BY 1")
        )
    assert versions == {1: 2, 2: 2}
    monkeypatch.setattr(crypto, "encrypt", encrypt)
    call_command("rotate_keys", stdout=io.StringIO())
    assert key_versions() == {column: {2} for column in ENCRYPTED}


def test_rotate_keys_reindex_recomputes_the_blind_indexes_after_a_key_change(
    keys, settings, make_customer
):
    customer = make_customer(**canary_like(1))
    settings.BLIND_INDEX_KEY = crypto.new_key()
    assert not Customer.objects.with_email("person1@example.com").exists()
    call_command("rotate_keys", "--reindex", stdout=io.StringIO())
    assert list(Customer.objects.with_email("person1@example.com")) == [customer]
    assert list(Customer.objects.with_phone(canary_like(1)["phone"])) == [customer]
    assert list(Customer.objects.with_phone_ending("0001")) == [customer]


def test_rotate_keys_reindex_keeps_the_indexes_of_a_row_it_cannot_read(canary, make_customer):
    other = make_customer("乙", phone="+8613700001111", email="yi@example.com")
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {TABLE} SET phone = (SELECT phone FROM {TABLE} WHERE id = %s) WHERE id = %s",
            [canary.pk, other.pk],
        )
    before = raw(other.pk, "email_index"), raw(other.pk, "phone_index")
    output = io.StringIO()
    call_command("rotate_keys", "--reindex", stdout=output, stderr=output)
    assert (raw(other.pk, "email_index"), raw(other.pk, "phone_index")) == before
    assert list(Customer.objects.with_email("yi@example.com")) == [other]


def test_saving_moves_an_untouched_value_to_the_newest_key(keys, make_customer):
    customer = make_customer(phone="+8613800138000", street="人民路1号")
    keys.add_second()
    customer = Customer.objects.get(pk=customer.pk)
    customer.company = "Changed"
    customer.save()
    assert raw(customer.pk, "phone")[1] == 2
    assert Customer.objects.get(pk=customer.pk).phone == "+8613800138000"


def canary_like(i):
    return {
        "phone": f"+861391234{i:04d}",
        "email": f"person{i}@example.com",
        "street": f"人民路{i}号",
        "birthday": datetime.date(1980 + i, 1, 2),
    }


def test_missing_keys_in_production_are_a_configuration_error(settings):
    settings.DEBUG = False
    settings.FIELD_ENCRYPTION_KEYS = ""
    settings.BLIND_INDEX_KEY = ""
    settings.FIELD_ENCRYPTION_DEV_KEYS_FILE = None
    try:
        with pytest.raises(ImproperlyConfigured, match="FIELD_ENCRYPTION_KEYS and BLIND_INDEX_KEY"):
            crypto.keyring()
        assert [error.id for error in crypto.check_keys()] == ["cims.E001"]
    finally:
        crypto.reset()


def test_production_settings_without_keys_refuse_to_start():
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("FIELD_ENCRYPTION_KEYS", "BLIND_INDEX_KEY"))
    }
    env.update(DEBUG="0", SECRET_KEY="x" * 50, DATABASE_URL="postgres://nobody@127.0.0.1/none")
    env.setdefault("REDIS_URL", "redis://127.0.0.1:6379/0")
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "FIELD_ENCRYPTION_KEYS and BLIND_INDEX_KEY must be set" in result.stderr


@pytest.mark.parametrize(
    ("keys_text", "message"),
    [
        ("1:c2hvcnQ=", "32 random bytes"),
        ("one:" + "A" * 43 + "=", "<version>:<base64 key>"),
        (f"1:{'A' * 43}= 1:{'B' * 43}=", "version 1 twice"),
    ],
)
def test_malformed_keys_are_a_configuration_error(settings, keys_text, message):
    settings.FIELD_ENCRYPTION_KEYS = keys_text
    settings.BLIND_INDEX_KEY = crypto.new_key()
    try:
        with pytest.raises(ImproperlyConfigured, match=message):
            crypto.keyring()
    finally:
        crypto.reset()


def test_development_creates_a_private_key_file_once_and_reuses_it(settings, tmp_path):
    key_file = tmp_path / "keys" / "field-keys.json"
    settings.FIELD_ENCRYPTION_KEYS = settings.BLIND_INDEX_KEY = ""
    settings.FIELD_ENCRYPTION_DEV_KEYS_FILE = key_file
    try:
        sealed = crypto.encrypt("secret", b"aad")
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        content = key_file.read_text()
        crypto.reset()
        assert crypto.decrypt(sealed, b"aad") == b"secret"
        assert key_file.read_text() == content
    finally:
        crypto.reset()


# Demo data ---------------------------------------------------------------------------------


def test_demo_customers_are_written_as_save_would_write_them():
    call_command("seed_demo", customers=30, stdout=io.StringIO())
    customers = list(Customer.objects.all())
    assert len(customers) == 30
    for customer in customers:
        assert customer.phone.startswith("+861")
        assert customer.email_index == search.email_index(customer.email)
        assert (customer.phone_index, customer.phone_last4_index) == search.phone_indexes(
            customer.phone
        )
        assert customer.unreadable_fields() == []
    assert seed_demo.find_anchor() is not None
    assert Customer.objects.with_phone(demo.phone_number(7)).count() == 1
    assert not any("@" in customer.search_text for customer in customers)
