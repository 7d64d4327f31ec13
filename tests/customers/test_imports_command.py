"""`manage.py import_customers`."""

import pytest
from django.core.management import CommandError, call_command

from customers.models import Customer, CustomerImport, ImportMapping
from tests.customers.import_helpers import csv_bytes, media  # noqa: F401 (fixture)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]

GOOD = ["王芳", "13900139000", "wang@example.com", "", "", "", "", "", "", "C1"]
BAD = ["李娜", "12345", "", "", "", "", "", "", "", "C2"]


def test_a_clean_file_imports_and_exits_normally(manager, tmp_path, capsys):
    path = tmp_path / "ok.csv"
    path.write_bytes(csv_bytes([GOOD]))
    call_command("import_customers", str(path), "--as", "manager")
    assert Customer.objects.get().external_id == "C1"
    assert "1 created" in capsys.readouterr().out
    assert not (tmp_path / "ok.csv.errors.csv").exists()


def test_failed_rows_exit_1_with_the_report_beside_the_file(manager, tmp_path, english):
    path = tmp_path / "some-bad.csv"
    path.write_bytes(csv_bytes([GOOD, BAD]))
    with pytest.raises(SystemExit) as exit:
        call_command("import_customers", str(path), "--as", "manager", "--on-duplicate", "update")
    assert exit.value.code == 1
    assert Customer.objects.count() == 1
    report = (tmp_path / "some-bad.csv.errors.csv").read_text(encoding="utf-8-sig")
    assert "12345" in report and "Not a valid phone number." in report
    assert CustomerImport.objects.get().on_duplicate == "update"


def test_dry_run_writes_nothing(manager, tmp_path):
    path = tmp_path / "check.csv"
    path.write_bytes(csv_bytes([GOOD, BAD]))
    with pytest.raises(SystemExit):
        call_command("import_customers", str(path), "--as", "manager", "--dry-run")
    assert not Customer.objects.exists()
    assert not CustomerImport.objects.exists()
    assert (tmp_path / "check.csv.errors.csv").exists()


def test_a_saved_mapping_is_used_by_name(manager, tmp_path):
    ImportMapping.objects.create(name="shop", columns={"名称": "display_name", "电话": "phone"})
    path = tmp_path / "shop.csv"
    path.write_bytes(csv_bytes([["赵六", "13600136000"]], headers=["名称", "电话"]))
    call_command("import_customers", str(path), "--as", "manager", "--mapping", "shop")
    assert Customer.objects.get().display_name == "赵六"


def test_bad_arguments_are_command_errors(manager, staff, tmp_path):
    path = tmp_path / "x.csv"
    path.write_bytes(csv_bytes([GOOD]))
    with pytest.raises(CommandError):
        call_command("import_customers", str(tmp_path / "missing.csv"), "--as", "manager")
    with pytest.raises(CommandError):
        call_command("import_customers", str(path), "--as", "staff")  # may not import
    with pytest.raises(CommandError):
        call_command("import_customers", str(path), "--as", "manager", "--mapping", "nope")
