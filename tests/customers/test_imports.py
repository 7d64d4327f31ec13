"""The import engine: values read, problems reported, known customers, revert, atomicity."""

import csv
import io

import pytest

from accounts.audit import AuditEntry
from customers import imports
from customers.models import Customer, CustomerImport, ImportedCustomer
from tests.customers.import_helpers import (  # noqa: F401 (fixture)
    HEADERS,
    check_import,
    csv_bytes,
    media,
    run_import,
)

pytestmark = pytest.mark.django_db

GOOD = ["王芳", "13900139000", "Wang@Example.com", "1990-01-02", "星光科技", "Lead", "女", "门店", "VIP，新客", "C1"]  # fmt: skip  # noqa: E501


def row(**changes):
    values = dict(zip(HEADERS, GOOD, strict=True))
    values.update(changes)
    return [values[h] for h in HEADERS]


def report_rows(job):
    with job.report.open("rb") as file:
        content = file.read()
    assert content.startswith(b"\xef\xbb\xbf")  # UTF-8 with a byte-order mark, for Excel
    return list(csv.reader(io.StringIO(content.decode("utf-8-sig"))))


def test_a_good_row_is_stored_normalised_encrypted_and_searchable(manager):
    job, outcome = run_import(manager, csv_bytes([row()]))

    assert (job.state, outcome.created, outcome.failed) == ("done", 1, 0)
    customer = Customer.objects.get(external_id="C1")
    assert customer.phone == "+8613900139000"
    assert customer.email == "wang@example.com"
    assert str(customer.birthday) == "1990-01-02"
    assert (customer.status, customer.gender, customer.source) == ("lead", "female", "store")
    assert customer.tags == ["VIP", "新客"]
    assert (customer.owner, customer.team, customer.created_by) == (
        manager,
        manager.teams[0],
        manager,
    )
    assert Customer.objects.with_phone("139 0013 9000").get() == customer
    assert Customer.objects.with_email("WANG@example.com").get() == customer
    assert Customer.objects.search("wangfang").get() == customer
    assert Customer.objects.search("星光").get() == customer


def test_source_defaults_to_import_and_dates_in_every_accepted_form(manager):
    rows = [
        row(姓名="甲", 手机="13900139001", 邮箱="", 来源="", 客户编号="", 生日="1990/3/4"),
        row(姓名="乙", 手机="13900139002", 邮箱="", 来源="", 客户编号="", 生日="1990年3月4日"),
    ]
    run_import(manager, csv_bytes(rows))
    for name in ("甲", "乙"):
        customer = Customer.objects.get(display_name=name)
        assert (customer.source, str(customer.birthday)) == ("import", "1990-03-04")


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("邮箱", "not-an-email", "Not a valid email address."),
        ("手机", "12345", "Not a valid phone number."),
        ("生日", "03/04/1990", "Not a date"),
        ("生日", "1990-02-30", "Not a date"),
        ("状态", "VIP客户", "Unknown status"),
        ("性别", "M", "Unknown gender"),
        ("来源", "朋友圈", "Unknown source channel"),
    ],
)
def test_a_bad_value_is_reported_with_row_and_column_and_not_guessed(
    manager, english, column, value, reason
):
    job, outcome = run_import(manager, csv_bytes([row(), row(**{column: value, "客户编号": "C2"})]))

    assert (outcome.created, outcome.failed) == (1, 1)
    assert not Customer.objects.filter(external_id="C2").exists()
    problems = report_rows(job)[1:]
    assert problems[0][:3] == ["3", column, value]
    assert reason in problems[0][3]


def test_a_row_with_the_wrong_number_of_columns_is_reported(manager, english):
    content = csv_bytes([row()]) + "李娜,13700137000\r\n".encode()
    job, outcome = run_import(manager, content)
    assert (outcome.created, outcome.failed) == (1, 1)
    assert "The row has 2 columns; the header has 10." in report_rows(job)[1][3]


def test_custom_attributes_are_read_by_label_and_checked(manager, custom_fields, english):
    headers = ["姓名", "Level", "Score", "Newsletter", "Joined"]
    content = csv_bytes(
        [["甲", "gold", "12", "是", "2024-01-02"], ["乙", "bronze", "x", "maybe", "2024-13-01"]],
        headers=headers,
    )
    job, outcome = run_import(manager, content)
    assert (outcome.created, outcome.failed) == (1, 1)
    assert Customer.objects.get(display_name="甲").attributes == {
        "level": "gold", "score": 12, "newsletter": True, "joined": "2024-01-02"
    }  # fmt: skip
    reasons = {r[1]: r[3] for r in report_rows(job)[1:]}
    assert "bronze is not a valid value for Level" in reasons["Level"]
    assert reasons["Score"] == "Not a number."
    assert "yes or no" in reasons["Newsletter"]
    assert "Not a date" in reasons["Joined"]


def test_formula_like_cells_are_stored_as_text_and_quoted_in_the_report(manager):
    evil = '=HYPERLINK("http://evil.example","x")'
    content = csv_bytes([row(公司=evil), row(姓名="乙", 手机="@SUM(1)", 邮箱="", 客户编号="C2")])
    job, _outcome = run_import(manager, content)

    assert Customer.objects.get(external_id="C1").company == evil
    problem = report_rows(job)[1]
    assert problem[2] == "'@SUM(1)"


@pytest.fixture
def known(staff, teams):
    return Customer.objects.create(
        display_name="王芳",
        phone="+8613900139000",
        email="old@example.com",
        company="旧公司",
        job_title="经理",
        tags=["老客户"],
        owner=staff,
        team=teams[0],
    )


def test_known_customers_are_skipped(manager, known):
    job, outcome = run_import(manager, csv_bytes([row()]), on_duplicate="skip")
    assert (outcome.created, outcome.skipped, outcome.known) == (0, 1, 1)
    known.refresh_from_db()
    assert known.company == "旧公司"


def test_update_fills_in_the_file_values_keeps_the_rest_and_adds_tags(manager, known):
    content = csv_bytes([row(邮箱="")])  # matched by phone; an empty cell keeps the email
    job, outcome = run_import(manager, content, on_duplicate="update")

    assert (outcome.created, outcome.updated) == (0, 1)
    known.refresh_from_db()
    assert (known.company, known.job_title, known.email) == ("星光科技", "经理", "old@example.com")
    assert known.tags == ["老客户", "VIP", "新客"]
    assert (known.version, known.updated_by, known.external_id) == (2, manager, "C1")
    assert Customer.objects.search("星光").get() == known


def test_create_anyway_leaves_out_the_clashing_values_and_says_so(manager, known, english):
    job, outcome = run_import(manager, csv_bytes([row()]), on_duplicate="create")

    assert outcome.created == 1
    new = Customer.objects.get(external_id="C1")
    assert (new.phone, new.email) == ("", "wang@example.com")
    problems = report_rows(job)[1:]
    assert problems == [
        ["2", "手机", "'+8613900139000", "Created without this mobile number: another customer already has it."]  # noqa: E501
    ]  # fmt: skip


def test_a_later_row_with_the_same_email_matches_the_customer_an_earlier_row_created(manager):
    rows = [row(), row(手机="13700137000", 公司="第二家", 客户编号="")]
    _job, outcome = run_import(manager, csv_bytes(rows), on_duplicate="update")
    assert (outcome.created, outcome.updated) == (1, 1)
    assert Customer.objects.get().company == "第二家"


def test_update_refuses_a_customer_the_importer_may_not_change(manager, staff2, english):
    Customer.objects.create(display_name="别人", phone="+8613900139000", owner=staff2)
    job, outcome = run_import(manager, csv_bytes([row()]), on_duplicate="update")
    assert (outcome.updated, outcome.failed) == (0, 1)
    assert "may not change" in report_rows(job)[1][3]


def test_the_check_counts_and_previews_but_changes_nothing(manager, known, english):
    rows = [row(), row(姓名="新人", 手机="13700137000", 邮箱="", 客户编号="C9")]
    job, _outcome = check_import(manager, csv_bytes(rows))

    assert job.state == "checked"
    assert (job.created, job.skipped, job.total_rows) == (1, 1, 2)
    [preview] = job.preview["rows"]
    values = dict(preview["values"])
    assert (preview["row"], values["display_name"], values["phone"]) == (3, "新人", "137****7000")
    assert Customer.objects.count() == 1
    assert not AuditEntry.objects.filter(action="import").exists()


def test_the_import_is_audited_with_its_counts(manager):
    job, _outcome = run_import(manager, csv_bytes([row()]))
    entry = AuditEntry.objects.get(action="import")
    assert entry.object_id == str(job.pk)
    assert (entry.data["created"], entry.data["failed"], entry.actor_username) == (1, 0, "manager")


def test_revert_deletes_created_customers_and_restores_updated_ones(manager, known):
    rows = [row(), row(姓名="新人", 手机="13700137000", 邮箱="new@example.com", 客户编号="C9")]
    job, outcome = run_import(manager, csv_bytes(rows), on_duplicate="update")
    assert (outcome.created, outcome.updated) == (1, 1)

    deleted, restored, kept = imports.revert(job, user=manager)

    assert (deleted, restored, kept) == (1, 1, 0)
    assert list(Customer.objects.all()) == [known]
    known.refresh_from_db()
    assert (known.company, known.email, known.tags, known.version) == (
        "旧公司", "old@example.com", ["老客户"], 1
    )  # fmt: skip
    assert Customer.objects.search("旧公司").get() == known
    job.refresh_from_db()
    assert (job.state, job.reverted_by) == ("reverted", manager)
    assert AuditEntry.objects.filter(action="import.revert", data__file__isnull=False).exists()


def test_revert_keeps_customers_changed_since_the_import(manager):
    job, _outcome = run_import(manager, csv_bytes([row()]))
    customer = Customer.objects.get()
    customer.company = "改过"
    customer.version += 1
    customer.save()
    assert imports.revert(job, user=manager) == (0, 0, 1)
    assert Customer.objects.get().company == "改过"


def test_a_failure_midway_leaves_nothing_and_a_second_run_finishes(manager, monkeypatch):
    rows = [row(姓名=f"客户{i}", 手机=f"139{i:08d}", 邮箱="", 客户编号=f"C{i}") for i in range(30)]
    job = _queued(manager, csv_bytes(rows))
    calls = {"n": 0}
    original = imports.Importer._insert

    def crash_on_second_batch(self, batch):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("worker died")
        return original(self, batch)

    monkeypatch.setattr(imports.Importer, "_insert", crash_on_second_batch)
    monkeypatch.setattr(imports, "BATCH_ROWS", 10)
    with pytest.raises(RuntimeError):
        imports.Importer(job, batch_rows=10).run()
    assert Customer.objects.count() == 0
    assert ImportedCustomer.objects.count() == 0
    job.refresh_from_db()
    assert job.state == "running"

    monkeypatch.setattr(imports.Importer, "_insert", original)
    outcome = imports.Importer(job, batch_rows=10).run()
    assert outcome.created == 30 and Customer.objects.count() == 30
    job.refresh_from_db()
    assert (job.state, job.created) == ("done", 30)


def test_a_finished_import_is_not_run_twice(manager):
    job, _outcome = run_import(manager, csv_bytes([row()]))
    assert imports.execute(job, dry_run=False) is None
    assert Customer.objects.count() == 1


def test_the_row_limit_fails_the_import_with_a_message(manager, settings, english):
    settings.IMPORT_MAX_ROWS = 1
    job, outcome = run_import(manager, csv_bytes([row(), row(客户编号="C2")]))
    assert outcome is None and job.state == "failed"
    assert "more than 1 rows" in job.error
    assert Customer.objects.count() == 0


def _queued(user, content):
    from tests.customers.import_helpers import make_import

    job = make_import(user, content)
    CustomerImport.objects.filter(pk=job.pk).update(state="running")
    job.refresh_from_db()
    return job
