"""run_report: a saved report written to a file from the command line, with the permissions of
the user it runs as."""

import csv
import io
import subprocess

import openpyxl
import pytest
from django.core.management import CommandError, call_command

from accounts.audit import Action, AuditEntry
from customers.models import Customer
from reports.models import SavedReport

pytestmark = pytest.mark.django_db

BY_PROVINCE = {
    "source": "customers",
    "group_by": ["province"],
    "aggregates": [{"func": "count"}],
    "sort": {"key": "count", "desc": True},
    "chart": "bar",
}


@pytest.fixture
def report(manager, staff, staff2, teams):
    for name, province, owner, team in [
        ("甲", "广东省", staff, teams[0]),
        ("乙", "广东省", staff, teams[0]),
        ("丙", "上海市", staff2, teams[1]),
    ]:
        Customer.objects.create(display_name=name, province=province, owner=owner, team=team)
    return SavedReport.objects.create(
        name="Customers by province", definition=BY_PROVINCE, owner=manager
    )


def run(*args):
    out = io.StringIO()
    call_command("run_report", *args, stdout=out)
    return out.getvalue()


def test_csv_has_what_the_user_may_see(report, tmp_path, admin_user, staff, english):
    report.shared_with_users.add(admin_user, staff)
    target = tmp_path / "all.csv"
    output = run("Customers by province", "--as", "admin", "--format", "csv", "--output", target)
    assert "2 rows" in output
    text = target.read_bytes().decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    assert ["广东省", "2"] in rows and ["上海市", "1"] in rows

    mine = tmp_path / "mine.csv"
    run("Customers by province", "--as", "staff", "--format", "csv", "--output", mine)
    rows = list(csv.reader(io.StringIO(mine.read_bytes().decode("utf-8-sig"))))
    assert ["广东省", "2"] in rows and not any("上海市" in row for row in rows)
    entry = AuditEntry.objects.filter(action=Action.EXPORT).latest("seq")
    assert entry.actor_username == "staff" and entry.data["rows"] == 1


def test_xlsx_can_be_read_back(report, tmp_path, manager):
    target = tmp_path / "province.xlsx"
    run("Customers by province", "--as", "manager", "--format", "xlsx", "--output", target)
    book = openpyxl.load_workbook(target)
    values = [[c.value for c in row] for row in book.worksheets[0].iter_rows()]
    assert ["广东省", 2] in [row[:2] for row in values]


def test_pdf_has_the_figures(report, tmp_path, manager):
    target = tmp_path / "province.pdf"
    run("Customers by province", "--as", "manager", "--format", "pdf", "--output", target)
    assert target.read_bytes().startswith(b"%PDF")
    text = subprocess.run(
        ["pdftotext", "-layout", str(target), "-"], capture_output=True, text=True, check=True
    ).stdout
    assert "广东省" in text and "上海市" not in text  # the manager's team only


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["Customers by province", "--as", "nobody"], "No active user"),
        (["No such report", "--as", "manager"], "No report"),
        # The report is the manager's, not shared with staff2.
        (["Customers by province", "--as", "staff2"], "No report"),
    ],
)
def test_unknown_users_and_reports_they_may_not_run_fail(report, staff2, tmp_path, args, message):
    target = tmp_path / "out.csv"
    with pytest.raises(CommandError, match=message):
        run(*args, "--format", "csv", "--output", target)
    assert not target.exists()


def test_an_unknown_format_is_refused(report, tmp_path):
    with pytest.raises(CommandError):
        run(
            "Customers by province",
            "--as",
            "manager",
            "--format",
            "docx",
            "--output",
            tmp_path / "x",
        )


def test_inactive_users_cannot_run_reports(report, tmp_path, manager):
    manager.is_active = False
    manager.save()
    with pytest.raises(CommandError, match="No active user"):
        run(
            "Customers by province",
            "--as",
            "manager",
            "--format",
            "csv",
            "--output",
            tmp_path / "x",
        )


def test_a_saved_analysis_runs_too(report, tmp_path, manager):
    SavedReport.objects.create(
        name="Provinces",
        kind=SavedReport.Kind.ANALYSIS,
        definition={"params": {"rows": ["province"], "measure": ["customers"]}},
        owner=manager,
    )
    target = tmp_path / "pivot.csv"
    run("Provinces", "--as", "manager", "--format", "csv", "--output", target)
    rows = list(csv.reader(io.StringIO(target.read_bytes().decode("utf-8-sig"))))
    # The manager's team has 甲 and 乙 in 广东省; the totals row comes last.
    assert ["广东省", "2"] in rows and rows[-1][1:] == ["2"]
