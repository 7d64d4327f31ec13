"""The import engine: values read, problems reported, known customers, revert, atomicity."""

import csv
import datetime
import io
import os

import pytest
from django.utils import timezone

from accounts.audit import AuditEntry
from customers import imports, tasks
from customers.models import Customer, CustomerImport, ImportedCustomer, Interaction
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


def test_revert_keeps_a_created_customer_someone_has_recorded_a_visit_of(manager):
    job, _outcome = run_import(
        manager, csv_bytes([row(), row(手机="13900139001", 邮箱="", 客户编号="C2")])
    )
    visited = Customer.objects.with_phone("13900139000").get()
    Interaction.objects.create(customer=visited, kind="visit", summary="到店")
    assert imports.revert(job, user=manager) == (1, 0, 1)
    assert list(Customer.objects.all()) == [visited]


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


def test_revert_deletes_a_customer_the_import_created_then_updated(manager):
    rows = [row(), row(手机="13700137000", 公司="第二家", 客户编号="")]
    job, outcome = run_import(manager, csv_bytes(rows), on_duplicate="update")
    assert (outcome.created, outcome.updated) == (1, 1)

    assert imports.revert(job, user=manager) == (1, 0, 0)
    assert not Customer.objects.exists()


def test_revert_undoes_every_row_that_changed_one_customer(manager, known):
    headers = ["姓名", "手机", "公司", "职位"]
    rows = [["王芳", "13900139000", "新公司", ""], ["王芳", "13900139000", "", "总监"]]
    job, outcome = run_import(manager, csv_bytes(rows, headers=headers), on_duplicate="update")
    assert outcome.updated == 2
    known.refresh_from_db()
    assert (known.company, known.job_title, known.version) == ("新公司", "总监", 3)

    assert imports.revert(job, user=manager) == (0, 1, 0)
    known.refresh_from_db()
    assert (known.company, known.job_title, known.version) == ("旧公司", "经理", 1)
    assert (known.email, known.phone) == ("old@example.com", "+8613900139000")


def test_revert_is_refused_when_another_customer_took_a_value_back_and_can_be_retried(
    manager, known, english
):
    job, _outcome = run_import(
        manager, csv_bytes([row(邮箱="new@example.com")]), on_duplicate="update"
    )
    other = Customer.objects.create(display_name="后来者", email="old@example.com")

    assert imports.revert(job, user=manager) is None
    job.refresh_from_db()
    assert (job.state, job.revertible) == ("done", True)
    assert "another customer now has the email" in job.error
    known.refresh_from_db()
    assert known.email == "new@example.com"

    other.email = "elsewhere@example.com"
    other.save()
    assert imports.revert(job, user=manager) == (0, 1, 0)
    known.refresh_from_db()
    assert known.email == "old@example.com"
    job.refresh_from_db()
    assert (job.state, job.error) == ("reverted", "")


def test_every_cell_of_the_report_is_protected_from_formulas_reasons_too(
    manager, custom_fields, english
):
    content = csv_bytes([["甲", "=1+2"], ["乙", "-bronze"]], headers=["姓名", "Level"])
    job, outcome = run_import(manager, content)
    assert outcome.failed == 2
    cells = [cell for line in report_rows(job)[1:] for cell in line]
    assert "'=1+2 is not a valid value for Level." in cells
    assert not [cell for cell in cells if cell.startswith(imports.FORMULA_STARTS)]


@pytest.mark.parametrize("value", ["nan", "inf", "-Infinity", "1e999"])
def test_a_number_attribute_that_json_cannot_hold_is_reported(
    manager, custom_fields, english, value
):
    content = csv_bytes([["甲", value], ["乙", "7"]], headers=["姓名", "Score"])
    job, outcome = run_import(manager, content)
    assert (job.state, outcome.created, outcome.failed) == ("done", 1, 1)
    assert report_rows(job)[1][1:] == ["Score", imports.safe_cell(value), "Not a number."]
    assert Customer.objects.get().attributes == {"score": 7}


def test_a_check_that_finishes_after_the_import_started_leaves_the_import_alone(manager):
    job = _queued(manager, csv_bytes([row()]))
    CustomerImport.objects.filter(pk=job.pk).update(state="checking")
    job.refresh_from_db()
    # The check was delivered twice: its twin finished and the import ran meanwhile.
    CustomerImport.objects.filter(pk=job.pk).update(state="done", created=1)

    assert imports.execute(job, dry_run=True) is None
    job.refresh_from_db()
    assert (job.state, job.created) == ("done", 1)
    assert not job.report


def test_files_of_finished_and_of_abandoned_imports_are_deleted_on_schedule(
    manager, settings, english
):
    settings.IMPORT_KEEP_FILES_DAYS = 30
    long_ago = timezone.now() - datetime.timedelta(days=31)
    finished, _outcome = run_import(manager, csv_bytes([row(邮箱="x", 客户编号="C5")]))
    abandoned = _queued(manager, csv_bytes([row(客户编号="C6")]))
    recent = _queued(manager, csv_bytes([row(客户编号="C7")]))
    CustomerImport.objects.filter(pk=finished.pk).update(finished_at=long_ago)
    CustomerImport.objects.filter(pk=abandoned.pk).update(created_at=long_ago, state="checked")
    CustomerImport.objects.filter(pk=recent.pk).update(state="checked")
    paths = [finished.file.path, finished.report.path, abandoned.file.path]

    tasks.purge_import_files()

    assert not [path for path in paths if os.path.exists(path)]
    finished.refresh_from_db()
    abandoned.refresh_from_db()
    recent.refresh_from_db()
    assert (finished.file.name, finished.report.name, finished.state) == ("", "", "done")
    # The preview's rows and problems held the file's values; its counts stay.
    assert set(finished.preview) == {"counts", "on_duplicate"}
    assert finished.preview["counts"]["problems"] == finished.problem_count == 1
    assert (abandoned.file.name, abandoned.sample, abandoned.state) == ("", [], "failed")
    assert "Upload it again" in abandoned.error
    assert recent.state == "checked" and os.path.exists(recent.file.path)


def test_an_import_is_revertible_for_a_while_then_the_earlier_rows_are_deleted(
    manager, known, settings
):
    settings.IMPORT_REVERT_DAYS = 30
    job, _outcome = run_import(manager, csv_bytes([row()]), on_duplicate="update")
    assert job.revertible and ImportedCustomer.objects.filter(previous__isnull=False).exists()
    known.delete()  # its earlier row, kept for the revert, must not outlive the period
    tasks.purge_import_files()
    assert ImportedCustomer.objects.exists()

    CustomerImport.objects.filter(pk=job.pk).update(
        finished_at=timezone.now() - datetime.timedelta(days=31)
    )
    job.refresh_from_db()
    assert not job.revertible
    tasks.purge_import_files()
    assert not ImportedCustomer.objects.exists()


def test_an_import_queued_by_someone_who_may_no_longer_import_does_nothing(manager, english):
    job = _queued(manager, csv_bytes([row()]))
    manager.is_active = False
    manager.save()
    job.refresh_from_db()

    assert imports.execute(job, dry_run=False) is None
    job.refresh_from_db()
    assert (job.state, job.error) == ("failed", f"{manager} may no longer import customers.")
    assert not Customer.objects.exists()
