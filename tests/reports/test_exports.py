"""Writing tables as CSV, Excel and PDF files."""

import csv
import datetime
import decimal
import io
import subprocess
import zipfile

import openpyxl
import pytest
from django.core.exceptions import PermissionDenied
from django.urls import reverse

from accounts.audit import Action, AuditEntry
from customers.models import Customer
from reports import exports
from reports.exports import Chart, Column, Table

FORMULAS = ["=1+1", "+41", "-2+3", "@SUM(A1)", "\tcmd", "\rcmd", '=HYPERLINK("http://x")']


def sample_table(**extra):
    columns = [
        Column("客户"),
        Column("订单数", "integer"),
        Column("金额", "money"),
        Column("占比", "percent"),
        Column("首次购买", "date"),
        Column("更新时间", "datetime"),
        Column("均值", "decimal"),
    ]
    rows = [
        [
            "张伟",
            3,
            decimal.Decimal("1234.50"),
            0.25,
            datetime.date(2025, 3, 1),
            datetime.datetime(2025, 3, 1, 1, 30, tzinfo=datetime.UTC),
            411.5,
        ],
        ["李娜", 1, decimal.Decimal("99.99"), 0.75, None, None, None],
    ]
    return Table(title="客户列表", columns=columns, rows=rows, **extra)


def written(table, fmt):
    buffer = io.BytesIO()
    count = exports.write(table, fmt, buffer)
    return count, buffer.getvalue()


def test_csv_starts_with_a_byte_order_mark_and_keeps_chinese():
    count, content = written(sample_table(), "csv")
    assert count == 2
    assert content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(content.decode("utf-8-sig"))))
    assert rows[0] == ["客户", "订单数", "金额", "占比", "首次购买", "更新时间", "均值"]
    # Times in the current time zone (Asia/Shanghai), money with two decimals, percentages.
    assert rows[1] == [
        "张伟",
        "3",
        "1234.50",
        "25.0%",
        "2025-03-01",
        "2025-03-01 09:30:00",
        "411.5",
    ]
    assert rows[2] == ["李娜", "1", "99.99", "75.0%", "", "", ""]


@pytest.mark.parametrize("text", FORMULAS)
def test_csv_writes_formula_like_text_as_text(text):
    table = Table(title="t", columns=[Column("a"), Column("n", "integer")], rows=[[text, -5]])
    _, content = written(table, "csv")
    rows = list(csv.reader(io.StringIO(content.decode("utf-8-sig"), newline="")))
    assert rows[1] == ["'" + text, "-5"]


def test_csv_from_a_generator_with_totals():
    table = Table(
        title="t",
        columns=[Column("a"), Column("n", "integer")],
        rows=(["x", n] for n in range(3)),
        totals=["合计", 3],
    )
    count, content = written(table, "csv")
    assert count == 3
    rows = list(csv.reader(io.StringIO(content.decode("utf-8-sig"))))
    assert rows[-1] == ["合计", "3"]
    assert len(rows) == 5


def test_xlsx_has_real_typed_cells_a_frozen_styled_header_and_a_filter():
    count, content = written(sample_table(filters=[("省份", "上海市")]), "xlsx")
    assert count == 2
    workbook = openpyxl.load_workbook(io.BytesIO(content))
    sheet = workbook.worksheets[0]
    assert sheet.title == "客户列表"
    assert sheet.freeze_panes == "A2"
    assert sheet.auto_filter.ref == "A1:G3"
    header = sheet[1]
    assert [cell.value for cell in header] == [
        "客户",
        "订单数",
        "金额",
        "占比",
        "首次购买",
        "更新时间",
        "均值",
    ]
    assert header[0].font.b
    assert header[0].fill.fgColor.rgb.endswith("1F6FEB")
    name, orders, money, share, first, updated, mean = sheet[2]
    assert name.value == "张伟" and name.data_type == "s"
    assert orders.value == 3 and orders.data_type == "n"
    assert money.value == 1234.5 and money.number_format == "#,##0.00"
    assert share.value == 0.25 and share.number_format == "0.0%"
    assert first.value == datetime.datetime(2025, 3, 1) and first.number_format == "yyyy-mm-dd"
    assert updated.value == datetime.datetime(2025, 3, 1, 9, 30)
    assert mean.value == 411.5
    assert sheet["E3"].value is None
    # Chinese text counts double when guessing widths; numbers get their kind's width.
    assert sheet.column_dimensions["C"].width >= 14
    about = workbook.worksheets[1]
    assert ["省份", "上海市"] in [[c.value for c in row] for row in about.iter_rows()]


@pytest.mark.parametrize("text", FORMULAS)
def test_xlsx_writes_formula_like_text_as_quoted_text(text):
    table = Table(title="t", columns=[Column("a"), Column("n", "integer")], rows=[[text, -5]])
    _, content = written(table, "xlsx")
    sheet = openpyxl.load_workbook(io.BytesIO(content)).worksheets[0]
    cell = sheet["A2"]
    # openpyxl leaves Excel's escape of a carriage return as it is stored.
    assert cell.value == text.replace("\r", "_x000D_")
    assert cell.data_type == "s"
    assert cell.quotePrefix
    assert sheet["B2"].value == -5 and sheet["B2"].data_type == "n"
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        assert b"<f>" not in archive.read("xl/worksheets/sheet1.xml")


def test_xlsx_drops_characters_a_workbook_cannot_hold():
    table = Table(title="t", columns=[Column("a")], rows=[["a\x00b\x1fc"], [["x", "y"]]])
    _, content = written(table, "xlsx")
    sheet = openpyxl.load_workbook(io.BytesIO(content)).worksheets[0]
    assert sheet["A2"].value == "abc"
    assert sheet["A3"].value == "x; y"


def test_aggregated_xlsx_gets_a_native_chart_and_a_bold_totals_row():
    chart = Chart("bar", ["上海市", "北京市"], [("客户数", [2, 1])], title="按省份")
    table = Table(
        title="按省份",
        columns=[Column("省份"), Column("客户数", "integer")],
        rows=[["上海市", 2], ["北京市", 1]],
        totals=["合计", 3],
        chart=chart,
        aggregated=True,
    )
    _, content = written(table, "xlsx")
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        names = archive.namelist()
        assert "xl/charts/chart1.xml" in names
        chart_xml = archive.read("xl/charts/chart1.xml").decode()
    assert "<c:barChart>" in chart_xml
    workbook = openpyxl.load_workbook(io.BytesIO(content))
    sheet = workbook.worksheets[0]
    assert [c.value for c in sheet[4]] == ["合计", 3]
    assert sheet["A4"].font.b and sheet["B4"].font.b
    # The filter covers the rows, not the totals.
    assert sheet.auto_filter.ref == "A1:B3"
    data = workbook.worksheets[1]
    assert [[c.value for c in row] for row in data.iter_rows()] == [
        ["按省份", "客户数"],
        ["上海市", 2],
        ["北京市", 1],
    ]


def test_a_table_without_aggregation_gets_no_native_chart():
    chart = Chart("pie", ["a"], [("n", [1])])
    table = Table(title="t", columns=[Column("a")], rows=[["x"]], chart=chart)
    _, content = written(table, "xlsx")
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        assert not [n for n in archive.namelist() if n.startswith("xl/charts/")]


def test_an_unknown_format_is_refused():
    with pytest.raises(ValueError):
        exports.write(sample_table(), "docx", io.BytesIO())


def test_download_names_keep_chinese_and_drop_path_characters():
    now = datetime.datetime(2025, 3, 1, 1, 30, tzinfo=datetime.UTC)
    table = Table(title="客户/列表: 上海", columns=[], rows=[])
    assert exports.filename(table, "xlsx", now=now) == "客户-列表- 上海-20250301-0930.xlsx"


# The customer list's exports ----------------------------------------------------------------


EXPORT_URL = "/reports/files/export/customers/"


@pytest.fixture
def team_customers(db, teams, staff, staff2):
    """Two customers of the manager's team (one with a formula-like company), one of another."""
    return [
        Customer.objects.create(
            display_name="张伟", company="上海华东贸易有限公司", province="上海市", city="上海",
            status="active", source="store", tags=["vip"], owner=staff, team=teams[0],
            phone="+8613800138000", email="zhang.wei@example.com",
        ),
        Customer.objects.create(
            display_name="李娜", company="=HYPERLINK(\"http://evil\")", province="北京市",
            status="lead", owner=staff, team=teams[0],
        ),
        Customer.objects.create(
            display_name="王芳", province="上海市", status="active", owner=staff2, team=teams[1]
        ),
    ]  # fmt: skip


def test_url_names():
    assert reverse("files:export_customers") == EXPORT_URL


def test_the_manager_exports_the_filtered_list_they_may_see_as_excel(
    manager_client, team_customers
):
    response = manager_client.get(EXPORT_URL, {"format": "xlsx", "province": "上海市"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/vnd.openxmlformats")
    assert "attachment" in response["Content-Disposition"]
    sheet = openpyxl.load_workbook(io.BytesIO(response.content)).worksheets[0]
    rows = [[cell.value for cell in row] for row in sheet.iter_rows(min_row=2)]
    # The other team's customer in 上海市 is not there; phone and email are masked as listed.
    assert [row[0] for row in rows] == ["张伟"]
    assert rows[0][1:8] == ["上海华东贸易有限公司", "138****8000", "z***@example.com", "上海市",
                            "上海", "Active", "Store"]  # fmt: skip
    about = workbook_about(response.content)
    assert ["Province", "上海市"] in about
    entry = AuditEntry.objects.get(action=Action.EXPORT)
    assert entry.data["what"] == "customers" and entry.data["rows"] == 1
    assert entry.data["filters"] == [["Province", "上海市"]]
    assert entry.data["format"] == "xlsx"


def workbook_about(content):
    about = openpyxl.load_workbook(io.BytesIO(content)).worksheets[-1]
    return [[cell.value for cell in row] for row in about.iter_rows()]


@pytest.fixture(autouse=True)
def _english(english):
    pass


def test_the_csv_export_protects_formulas(manager_client, team_customers):
    response = manager_client.get(EXPORT_URL, {"format": "csv", "sort": "name"})
    assert response.status_code == 200
    content = response.content
    assert content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(content.decode("utf-8-sig"))))
    assert len(rows) == 3
    companies = {row[0]: row[1] for row in rows[1:]}
    assert companies == {"张伟": "上海华东贸易有限公司", "李娜": '\'=HYPERLINK("http://evil")'}


def test_the_pdf_export_shows_chinese_names_and_the_filters(
    manager_client, team_customers, tmp_path
):
    response = manager_client.get(EXPORT_URL, {"format": "pdf", "status": "active"})
    assert response.status_code == 200
    assert response.content.startswith(b"%PDF")
    text = pdf_text(response.content, tmp_path)
    assert "张伟" in text and "上海华东贸易有限公司" in text
    assert "李娜" not in text and "王芳" not in text
    assert "Status:" in text and "Active" in text
    assert "Page 1 / 1" in text


def pdf_text(content, tmp_path):
    path = tmp_path / "export.pdf"
    path.write_bytes(content)
    return subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True
    ).stdout


def test_staff_without_the_export_permission_may_not_export(staff_client, team_customers):
    assert staff_client.get(EXPORT_URL, {"format": "csv"}).status_code == 403
    assert not AuditEntry.objects.filter(action=Action.EXPORT).exists()


def test_an_unknown_format_is_a_bad_request(manager_client):
    assert manager_client.get(EXPORT_URL, {"format": "docx"}).status_code == 400


def test_invalid_filters_send_back_to_the_list(manager_client, team_customers):
    response = manager_client.get(
        EXPORT_URL, {"format": "csv", "created_after": "x", "status": "nope"}
    )
    assert response.status_code == 302
    assert response["Location"].startswith("/customers/?")


def test_a_large_list_is_made_in_the_background_after_confirming(
    manager_client, manager, team_customers, settings, django_capture_on_commit_callbacks
):
    from reports.models import GeneratedFile

    settings.EXPORT_SYNC_MAX_ROWS = 1
    response = manager_client.get(EXPORT_URL, {"format": "xlsx", "sort": "name"})
    assert response.status_code == 200
    assert b"in the background" in response.content
    assert not GeneratedFile.objects.exists()
    query = response.context["query"].urlencode()
    with django_capture_on_commit_callbacks() as callbacks:
        response = manager_client.post(EXPORT_URL, {"format": "xlsx", "query": query})
    generated = GeneratedFile.objects.get()
    assert response["Location"] == generated.get_absolute_url()
    assert len(callbacks) == 1
    assert generated.owner == manager and generated.format == "xlsx"
    assert generated.spec == {
        "kind": "customers", "query": {"sort": ["name"]}
    }  # fmt: skip
    generated.build()
    generated.refresh_from_db()
    assert generated.status == "done" and generated.rows == 2


def test_a_pdf_above_the_hard_cap_is_refused_with_a_hint_to_use_excel(
    manager_client, team_customers, settings
):
    settings.EXPORT_PDF_MAX_ROWS = 1
    response = manager_client.get(EXPORT_URL, {"format": "pdf"}, follow=True)
    assert "export to Excel instead" in response.content.decode()


def test_a_background_build_reapplies_the_owners_current_permissions(
    manager, team_customers, teams
):
    from reports.models import GeneratedFile

    generated = GeneratedFile.objects.create(
        owner=manager, title="Customers", format="csv", spec={"kind": "customers", "query": {}}
    )
    # The manager moved to the other team meanwhile: the file holds that team's customers.
    teams[0].members.remove(manager)
    teams[1].members.add(manager)
    generated.build()
    with generated.file.open("rb") as stored:
        rows = list(csv.reader(io.StringIO(stored.read().decode("utf-8-sig"))))
    assert [row[0] for row in rows[1:]] == ["王芳"]


def test_a_background_build_fails_when_the_owner_lost_the_export_permission(
    manager, team_customers
):
    from django.contrib.auth.models import Group

    from reports.models import GeneratedFile

    generated = GeneratedFile.objects.create(
        owner=manager, title="Customers", format="csv", spec={"kind": "customers", "query": {}}
    )
    manager.groups.set([Group.objects.get(name="Staff")])
    with pytest.raises(PermissionDenied):
        generated.build()
    generated.refresh_from_db()
    assert generated.status == "failed"
    assert generated.error == "You may not export customers."


# .ci/run installs LibreOffice; without it this test fails rather than passing unnoticed.
def test_libreoffice_opens_the_workbook_with_its_values_and_no_formulas(tmp_path):
    table = sample_table(totals=["合计", 4, decimal.Decimal("1334.49"), None, None, None, None])
    table.rows.append(["=1+1", -7, None, None, None, None, None])
    _, content = written(table, "xlsx")
    (tmp_path / "export.xlsx").write_bytes(content)
    subprocess.run(
        [
            "soffice", f"-env:UserInstallation=file://{tmp_path}/profile", "--headless",
            "--convert-to", "csv:Text - txt - csv (StarCalc):44,34,76", "--outdir", str(tmp_path),
            str(tmp_path / "export.xlsx"),
        ],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    rows = list(csv.reader(io.StringIO((tmp_path / "export.csv").read_text("utf-8-sig"))))
    assert rows[0] == ["客户", "订单数", "金额", "占比", "首次购买", "更新时间", "均值"]
    assert rows[1] == ["张伟", "3", "1,234.50", "25.0%", "2025-03-01", "2025-03-01 09:30", "411.50"]
    # Formula-like text stays text (LibreOffice would show 2 for a formula).
    assert rows[3][:2] == ["=1+1", "-7"]
    assert rows[4][:3] == ["合计", "4", "1,334.49"]


@pytest.mark.parametrize("kind", ["bar", "line", "pie"])
def test_chart_svg_draws_every_kind_with_chinese_labels_escaped(kind):
    chart = Chart(
        kind, ["上海市", "北京<市>"], [("客户数", [3, 1]), ("订单", [5, 0])], title="按省份"
    )
    svg = exports.chart_svg(chart, width=400, height=200)
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert "上海市" in svg and "北京&lt;市&gt;" in svg and "按省份" in svg
    assert "Noto Sans CJK SC" in svg
    shape = {"bar": "<rect", "line": "<polyline", "pie": "<path"}[kind]
    assert shape in svg
    if kind == "pie":
        assert "75.0%" in svg and "25.0%" in svg  # each slice's share of the first series


def test_chart_options_for_echarts():
    chart = Chart("bar", ["上海市", "北京市"], [("客户数", [3, 1])], title="按省份")
    options = exports.chart_options(chart)
    assert options["xAxis"]["data"] == ["上海市", "北京市"]
    assert options["series"] == [{"type": "bar", "name": "客户数", "data": [3, 1]}]
    pie = exports.chart_options(Chart("pie", ["a", "b"], [("n", [2, 1])]))
    assert pie["series"][0]["data"] == [{"name": "a", "value": 2}, {"name": "b", "value": 1}]


def test_pdf_has_the_title_filters_chart_figures_and_page_numbers(tmp_path):
    chart = Chart("bar", ["上海市", "北京市"], [("客户数", [2, 1])], title="客户分布")
    rows = [[f"客户{n}", n, decimal.Decimal(n) * 10] for n in range(120)]
    table = Table(
        title="客户明细",
        columns=[Column("姓名"), Column("订单", "integer"), Column("金额", "money")],
        rows=iter(rows),
        filters=[("省份", "上海市")],
        chart=chart,
        totals=["合计", 7140, decimal.Decimal("71400")],
    )
    count, content = written(table, "pdf")
    assert count == 120
    text = pdf_text(content, tmp_path)
    assert "客户明细" in text and "省份:" in text and "上海市" in text and "客户分布" in text
    assert "客户119" in text and "1,190.00" in text and "71,400.00" in text
    pages = text.count("\f")
    assert pages >= 3
    assert f"Page {pages} / {pages}" in text
    # The header is repeated at the top of every page's table.
    assert text.count("订单") >= pages


def test_a_pdf_above_the_row_cap_is_refused(settings):
    settings.EXPORT_PDF_MAX_ROWS = 2
    table = Table(title="t", columns=[Column("a")], rows=(["x"] for _ in range(3)))
    with pytest.raises(exports.ExportRefused, match="Excel"):
        exports.write(table, "pdf", io.BytesIO())


def test_the_about_sheet_counts_the_rows():
    _, content = written(sample_table(), "xlsx")
    assert ["Rows", 2] in workbook_about(content)


@pytest.mark.parametrize("fmt", exports.FORMATS)
def test_an_empty_table_is_still_a_valid_file(fmt):
    count, content = written(Table(title="空", columns=[], rows=[]), fmt)
    assert count == 0
    if fmt == "xlsx":
        assert openpyxl.load_workbook(io.BytesIO(content)).worksheets[0].max_row == 1
    else:
        assert content


def test_the_export_follows_the_lists_sort_also_on_lifetime_value(manager_client, team_customers):
    for sort in ("name", "-ltv", "revenue"):
        response = manager_client.get(EXPORT_URL, {"format": "csv", "sort": sort})
        assert response.status_code == 200, sort
    content = manager_client.get(EXPORT_URL, {"format": "csv", "sort": "-name"}).content
    rows = list(csv.reader(io.StringIO(content.decode("utf-8-sig"))))
    assert [row[0] for row in rows[1:]] == ["张伟", "李娜"]  # zhang before li, descending


@pytest.mark.parametrize("sort", ["-created", "name", "-name", "status", "-ltv", "last_order"])
def test_the_export_reads_in_batches_in_the_lists_order(manager, team_customers, monkeypatch, sort):
    from reports import customer_export

    monkeypatch.setattr(customer_export, "FETCH_CHUNK", 1)
    expected = [
        c.display_name for c in customer_export.filtered_customers({"sort": [sort]}, manager)[0]
    ]
    table = customer_export.customer_table({"sort": [sort]}, manager)
    assert [row[0] for row in table.rows] == expected
    assert sorted(expected) == ["张伟", "李娜"]
