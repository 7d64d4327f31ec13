"""Reading import files: encodings, delimiters, spreadsheets, hostile archives, headers."""

import datetime
import io
import time
import zipfile

import pytest

from customers.import_fields import suggest
from customers.import_files import ImportFileError, inspect
from customers.models import Customer
from tests.customers.import_helpers import (  # noqa: F401 (fixture)
    HEADERS,
    csv_bytes,
    media,
    run_import,
    xlsx_bytes,
)

pytestmark = pytest.mark.django_db

ROWS = [
    ["张伟", "138 0013 8000", "zhang@example.com", "1985-06-07", "上海华东贸易", "活跃", "男", "展会", "VIP", "A1"],  # noqa: E501
    ["𠮷田", "+86 139-0013-9000", "", "", "", "", "", "", "", "A2"],
    ["李娜", "12345", "", "", "", "", "", "", "", "A3"],
]  # fmt: skip


@pytest.mark.parametrize(
    ("encoding", "delimiter"),
    [
        ("utf-8", ","),
        ("utf-8-sig", ";"),
        ("utf-8", "\t"),
        ("gb18030", ","),
        ("gb18030", "\t"),
    ],
)
def test_csv_of_every_encoding_and_delimiter_is_read(manager, encoding, delimiter):
    job, outcome = run_import(manager, csv_bytes(ROWS, encoding=encoding, delimiter=delimiter))
    assert job.delimiter == delimiter
    assert (outcome.created, outcome.failed) == (2, 1)
    assert Customer.objects.get(external_id="A1").display_name == "张伟"
    assert Customer.objects.get(external_id="A2").display_name == "𠮷田"


def test_gbk_as_chinese_excel_writes_it_is_read(manager):
    rows = [row for row in ROWS if row[0] != "𠮷田"]  # GBK has no 𠮷
    job, outcome = run_import(manager, csv_bytes(rows, encoding="gbk"))
    assert job.encoding == "gb18030"
    assert (outcome.created, outcome.failed) == (1, 1)
    customer = Customer.objects.get(external_id="A1")
    assert (customer.company, customer.status, customer.source) == (
        "上海华东贸易",
        "active",
        "expo",
    )


def test_text_in_no_known_encoding_is_refused(tmp_path, english):
    path = tmp_path / "bad.csv"
    path.write_bytes(b"name\n\xff\xfe\xfa\x80\x81")
    with pytest.raises(ImportFileError, match="neither UTF-8 nor GBK"):
        inspect(path, "bad.csv")


def test_xlsx_with_date_and_number_cells_is_read(manager):
    rows = [
        ["王芳", 13900139000, "wang@example.com", datetime.datetime(1990, 1, 2), "", "", "", "", "", 77],  # noqa: E501
        ["=1+1", 13700137000, "", "", "", "", "", "", "", "B2"],
        ["李娜", 12345, "", "", "", "", "", "", "", "B3"],
    ]  # fmt: skip
    job, outcome = run_import(manager, xlsx_bytes(rows), name="customers.xlsx")
    assert job.file_format == "xlsx"
    assert (outcome.created, outcome.failed) == (2, 1)
    customer = Customer.objects.get(external_id="77")
    assert (customer.phone, str(customer.birthday)) == ("+8613900139000", "1990-01-02")
    # A formula is stored as the text it is, never evaluated.
    assert Customer.objects.get(external_id="B2").display_name == "=1+1"


def test_an_xlsx_zip_bomb_is_refused_before_it_is_opened(tmp_path, english):
    path = tmp_path / "bomb.xlsx"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/worksheets/sheet1.xml", b"\0" * (200 * 1024 * 1024))
    assert path.stat().st_size < 1024 * 1024
    with pytest.raises(ImportFileError, match="zip bomb"):
        inspect(path, "bomb.xlsx")


def test_an_xlsx_with_xml_entities_is_refused(tmp_path, english):
    content = xlsx_bytes([["王芳", "13900139000", "", "", "", "", "", "", "", ""]])
    bomb = (
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
    )
    source, target = io.BytesIO(content), io.BytesIO()
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for item in old.infolist():
            data = old.read(item)
            if item.filename == "xl/worksheets/sheet1.xml":
                body = data.split(b"?>", 1)[-1]
                data = bomb.encode() + body.replace(b"<v>", b"<v>&lol2;", 1)
            new.writestr(item, data)
    path = tmp_path / "entities.xlsx"
    path.write_bytes(target.getvalue())
    with pytest.raises(ImportFileError, match="XML entities"):
        inspect(path, "entities.xlsx")


def test_an_old_xls_file_is_refused_with_advice(tmp_path, english):
    path = tmp_path / "old.xls"
    path.write_bytes(b"\xd0\xcf\x11\xe0" + b"\0" * 100)
    with pytest.raises(ImportFileError, match="save the sheet as .xlsx"):
        inspect(path, "old.xls")


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (
            ["姓名", "手机号", "电子邮件", "公司名称", "职位", "省份", "城市", "区", "地址", "邮编"],  # noqa: E501
            ["display_name", "phone", "email", "company", "job_title", "province", "city",
             "district", "street", "postcode"],
        ),
        (
            ["客户名称", "电话", "邮箱", "性别", "生日", "标签", "备注", "来源", "状态", "客户编号"],  # noqa: E501
            ["display_name", "phone", "email", "gender", "birthday", "tags", "notes", "source",
             "status", "external_id"],
        ),
        (  # Salesforce contacts
            ["Contact ID", "First Name", "Last Name", "Title", "Account Name", "Mailing Street",
             "Mailing City", "Mailing State/Province", "Mailing Zip/Postal Code", "Phone",
             "Mobile", "Email", "Lead Source", "Birthdate", "Description"],
            ["external_id", "given_name", "family_name", "job_title", "company", "street", "city",
             "province", "postcode", None, "phone", "email", "source", "birthday", "notes"],
        ),
        (  # HubSpot contacts
            ["Record ID", "First Name", "Last Name", "Email", "Phone Number", "Company Name",
             "Job Title", "State/Region", "Postal Code", "Street Address", "Lifecycle Stage"],
            ["external_id", "given_name", "family_name", "email", "phone", "company",
             "job_title", "province", "postcode", "street", "status"],
        ),
        (  # Zoho CRM contacts
            ["Full Name", "E-mail", "Mobile", "Mailing Zip", "Date of Birth", "Contact Owner"],
            ["display_name", "email", "phone", "postcode", "birthday", "owner"],
        ),
    ],
)  # fmt: skip
def test_columns_are_suggested_from_chinese_english_and_crm_headers(headers, expected):
    suggested = suggest(headers, [])
    assert [suggested.get(i) for i in range(len(headers))] == expected


def test_custom_attributes_are_suggested_by_key_or_label(custom_fields):
    assert suggest(["hobby", "Level", "姓名"], list(custom_fields.values())) == {
        0: "attr:hobby", 1: "attr:level", 2: "display_name"
    }  # fmt: skip


def test_a_saved_mapping_wins_over_suggestions():
    saved = {"名称": "company", "联系人": "display_name"}
    assert suggest(["名称", "联系人"], [], saved) == {0: "company", 1: "display_name"}


def test_the_public_sample_export_imports_what_it_can_and_reports_the_rest(manager, english):
    with open("/work/shared/data/customers-1000.csv", "rb") as file:
        content = file.read()
    job, outcome = run_import(manager, content, name="customers-1000.csv")
    mapping = {job.headers[int(k)]: v for k, v in job.mapping.items()}
    assert mapping["First Name"] == "given_name" and mapping["Customer Id"] == "external_id"
    assert mapping["Phone 1"] == "phone" and mapping["Email"] == "email"
    assert outcome.total == 1000
    assert outcome.created + outcome.failed == 1000
    assert outcome.created > 0 and outcome.failed > 0
    reasons = {p["reason"] for p in job.preview["problems"]}
    assert "Not a valid phone number." in reasons
    # Row 1 has an American number with an extension, which is reported, not guessed.
    assert not Customer.objects.filter(external_id="dE014d010c7ab0c").exists()
    customer = Customer.objects.exclude(family_name="").first()
    assert customer.display_name == f"{customer.given_name} {customer.family_name}"


def _xlsx_with_a_cell_at(cell):
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.append(["姓名", "手机"])
    sheet.append(["王芳", "13900139000"])
    sheet[cell] = " "
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def test_a_stray_cell_far_away_neither_widens_nor_lengthens_the_sheet(manager):
    # Declared A1:XFD1048576, which openpyxl would fill with a million rows of 16,384 cells.
    content = _xlsx_with_a_cell_at("XFD1048576")
    started = time.monotonic()
    job, outcome = run_import(manager, content, name="stray.xlsx")
    assert time.monotonic() - started < 20
    assert job.headers == ["姓名", "手机"]
    assert (job.state, outcome.total, outcome.created, outcome.failed) == ("done", 1, 1, 0)


def test_a_value_past_the_header_is_still_reported(manager, english):
    job, outcome = run_import(manager, _xlsx_with_a_cell_at("C2"), name="wider.xlsx")
    assert (outcome.created, outcome.failed) == (0, 1)
    assert "3 columns; the header has 2" in job.preview["problems"][0]["reason"]


def test_a_file_with_too_many_columns_is_refused(tmp_path, settings, english):
    settings.IMPORT_MAX_COLUMNS = 50
    path = tmp_path / "wide.csv"
    path.write_bytes(csv_bytes([["x"] * 51], headers=[f"c{i}" for i in range(51)]))
    with pytest.raises(ImportFileError, match="The file has 51 columns; at most 50"):
        inspect(path, "wide.csv")
    path = tmp_path / "wide.xlsx"
    path.write_bytes(xlsx_bytes([], headers=[f"c{i}" for i in range(51)]))
    with pytest.raises(ImportFileError, match="The file has 51 columns; at most 50"):
        inspect(path, "wide.xlsx")


def test_a_quote_that_is_never_closed_is_refused_with_its_line(tmp_path, english):
    lines = ["姓名,手机,备注", '甲,13900139001,"oops']
    lines += [f"人{i},1390013{i:04d},ok" for i in range(9)]
    path = tmp_path / "quote.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ImportFileError, match=r"starts on line 2 .*quotation mark"):
        inspect(path, "quote.csv")


def test_quotes_that_never_close_are_sniffed_quickly(tmp_path):
    path = tmp_path / "quotes.csv"
    path.write_text("姓名,手机\n" + ',"x' * 30_000 + "\n")
    started = time.monotonic()
    try:
        inspect(path, "quotes.csv")
    except ImportFileError:
        pass
    assert time.monotonic() - started < 3


def test_a_nul_byte_in_the_header_or_a_cell_is_dropped(manager):
    content = "姓\x00名,手机,备注\n王芳,13900139000,a\x00b\n".encode()
    job, outcome = run_import(manager, content)
    assert job.headers == ["姓名", "手机", "备注"]
    assert (job.state, outcome.created) == ("done", 1)
    assert Customer.objects.get().notes == "ab"


@pytest.mark.parametrize("damage", ["truncated", "not xml"])
def test_a_damaged_worksheet_is_refused_with_a_message(tmp_path, english, damage):
    content = xlsx_bytes([["王芳", "13900139000", "", "", "", "", "", "", "", ""]])
    source, target = io.BytesIO(content), io.BytesIO()
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for item in old.infolist():
            data = old.read(item)
            if item.filename == "xl/worksheets/sheet1.xml":
                data = data[: len(data) // 2] if damage == "truncated" else b"\x00\x01 garbage"
            new.writestr(item, data)
    path = tmp_path / "damaged.xlsx"
    path.write_bytes(target.getvalue())
    with pytest.raises(ImportFileError, match="damaged|not a valid .xlsx"):
        inspect(path, "damaged.xlsx")


def test_formula_cells_of_every_kind_are_read_as_their_text(manager):
    from openpyxl import Workbook
    from openpyxl.worksheet.formula import ArrayFormula

    book = Workbook()
    sheet = book.active
    sheet.append(["姓名", "公司", "备注"])
    sheet.append(["甲", '=CONCAT("a","b")', None])
    sheet["C2"] = ArrayFormula("C2:C2", "=SUM(1,2)")
    out = io.BytesIO()
    book.save(out)
    job, outcome = run_import(manager, out.getvalue(), name="formulas.xlsx")
    assert (outcome.created, outcome.failed) == (1, 0)
    customer = Customer.objects.get()
    assert (customer.company, customer.notes) == ('=CONCAT("a","b")', "=SUM(1,2)")
