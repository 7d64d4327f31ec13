"""Tables of figures written as Excel, PDF and CSV files, and the charts that go with them.

Every list, analysis and report that can be downloaded describes itself as a `Table` (columns
with a kind, rows that may be a generator, the filters used, an optional chart and totals);
`write` turns it into a file of one of `FORMATS`. Small tables are sent at once
(`export_response`); large ones become a `reports.models.GeneratedFile` built by a Celery worker.

Excel files: XlsxWriter makes the workbook around the rows (styles, header, chart), and the
rows are streamed into it as the sheet's XML, several times quicker than a library call per
cell and with flat memory (docs/exports.md has the measurements). openpyxl stays for reading
imports. PDFs: WeasyPrint, from templates/reports/pdf/table.html. CSV: the standard library.
"""

import csv
import datetime
import decimal
import html
import io
import itertools
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from django.conf import settings
from django.http import HttpResponse
from django.utils import timezone
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from intake.spreadsheets import FORMULA_STARTS, MAX_CELL_TEXT

FORMATS = ("xlsx", "pdf", "csv")
FORMAT_LABELS = {
    "xlsx": gettext_lazy("Excel"),
    "pdf": gettext_lazy("PDF"),
    "csv": gettext_lazy("CSV"),
}
CONTENT_TYPES = {
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pdf": "application/pdf",
    "csv": "text/csv; charset=utf-8",
}
KINDS = ("text", "integer", "decimal", "money", "percent", "date", "datetime")
CHART_KINDS = ("bar", "line", "pie")

# Excel number formats by column kind. Percent values are fractions (0.25 is 25 %).
NUMBER_FORMATS = {
    "integer": "#,##0",
    "decimal": "#,##0.00",
    "money": "#,##0.00",
    "percent": "0.0%",
    "date": "yyyy-mm-dd",
    "datetime": "yyyy-mm-dd hh:mm",
}
# Column widths (in characters) when a column gives none: its kind's usual width, or for text
# the longest of its label and the first rows' values, within these bounds.
KIND_WIDTHS = {"integer": 10, "decimal": 12, "money": 14, "percent": 9, "date": 11, "datetime": 17}
MIN_WIDTH, MAX_WIDTH = 6, 60
SAMPLE_ROWS = 100

# Characters an XML file (and so a workbook) cannot hold.
ILLEGAL_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


@dataclass(frozen=True)
class Column:
    label: str
    kind: str = "text"  # one of KINDS
    width: int | None = None  # in characters; guessed when None


@dataclass
class Chart:
    kind: str  # "bar" | "line" | "pie"
    categories: list[str]
    series: list[tuple[str, list[float]]]  # (series name, one value per category)
    title: str = ""


@dataclass
class Table:
    title: str
    columns: list[Column]
    # May be a generator (streamed); values: str, int, Decimal, float, date, datetime, None.
    rows: Iterable[Sequence]
    filters: list[tuple[str, str]] = field(default_factory=list)  # (label, value) as chosen
    chart: Chart | None = None
    totals: Sequence | None = None  # a totals row, written last and bold
    aggregated: bool = False  # grouped data: Excel gets a native chart when chart is set
    # How many rows there will be, when known beforehand: background builds show progress.
    row_count: int | None = None


class ExportRefused(Exception):
    """A file that will not be made, with a message for the user (e.g. a PDF too long)."""


def write(table, fmt, fileobj, *, progress=None):
    """Write `table` as a `fmt` file to the binary `fileobj`; the number of rows written.

    `progress(rows_done)` is called now and then while rows are written (background builds).
    """
    writer = {"csv": write_csv, "xlsx": write_xlsx, "pdf": write_pdf}.get(fmt)
    if writer is None:
        raise ValueError(f"Unknown export format {fmt!r}.")
    return writer(table, fileobj, progress=progress or _no_progress)


def _no_progress(rows_done):
    pass


# How often (in rows) the writers report progress.
PROGRESS_EVERY = 1000


def filename(table, fmt, *, now=None):
    """A download name: the title (kept readable, also in Chinese) and the date."""
    now = timezone.localtime(now or timezone.now())
    stem = re.sub(r'[\\/:*?"<>|\x00-\x1f]+', "-", table.title).strip(" .-") or "export"
    return f"{stem[:80]}-{now:%Y%m%d-%H%M}.{fmt}"


def local_naive(value):
    """A datetime in the current time zone without its zone (spreadsheets know none)."""
    if timezone.is_aware(value):
        value = timezone.localtime(value)
    return value.replace(tzinfo=None)


def plain_text(value):
    """Any value as text a cell can hold: lists joined, unprintable characters dropped."""
    if isinstance(value, list | tuple):
        value = "; ".join(str(item) for item in value)
    text = ILLEGAL_XML.sub("", str(value))
    return text[:MAX_CELL_TEXT]


# CSV --------------------------------------------------------------------------------------


def _csv_value(kind, value):
    if value is None:
        return ""
    if kind == "text" or isinstance(value, str):
        text = plain_text(value)
        # A spreadsheet would run it as a formula: the quote makes it text, as Excel shows it.
        return "'" + text if text.startswith(FORMULA_STARTS) else text
    if isinstance(value, datetime.datetime):
        return local_naive(value).isoformat(sep=" ", timespec="seconds")
    if isinstance(value, datetime.date):
        return value.isoformat()
    if kind == "percent":
        # Excel reads "25.0%" as the number 0.25 shown as a percentage.
        return f"{float(value) * 100:.1f}%"
    if kind == "money":
        return f"{decimal.Decimal(value):.2f}" if isinstance(value, decimal.Decimal) else value
    return value


def write_csv(table, fileobj, *, progress):
    """UTF-8 with a byte order mark, which Excel (also in Chinese) needs to read it as UTF-8."""
    text = io.TextIOWrapper(fileobj, encoding="utf-8-sig", newline="", write_through=False)
    try:
        out = csv.writer(text)
        kinds = [column.kind for column in table.columns]
        out.writerow([_csv_value("text", column.label) for column in table.columns])
        count = 0
        for count, row in enumerate(table.rows, start=1):
            out.writerow([_csv_value(kind, value) for kind, value in zip(kinds, row, strict=False)])
            if count % PROGRESS_EVERY == 0:
                progress(count)
        if table.totals is not None:
            out.writerow([_csv_value(k, v) for k, v in zip(kinds, table.totals, strict=False)])
        text.flush()
    finally:
        text.detach()  # leave `fileobj` open for the caller
    return count


# Excel ------------------------------------------------------------------------------------


def guess_widths(columns, sample):
    widths = []
    for index, column in enumerate(columns):
        if column.width:
            widths.append(column.width)
            continue
        label = _display_width(column.label) + 2
        if column.kind in KIND_WIDTHS:
            widths.append(max(label, KIND_WIDTHS[column.kind]))
            continue
        longest = max(
            (_display_width(plain_text(row[index])) for row in sample if row[index] is not None),
            default=0,
        )
        widths.append(min(MAX_WIDTH, max(MIN_WIDTH, label, longest + 1)))
    return widths


def _display_width(text):
    """Characters, Chinese (and other wide) ones counting twice, as a spreadsheet shows them."""
    text = str(text)
    return len(text) + sum(1 for char in text if ord(char) >= 0x1100)


def sheet_name(title):
    name = re.sub(r"[\[\]:*?/\\]", " ", title).strip("' ")[:31]
    return name or "Sheet1"


def write_xlsx(table, fileobj, *, progress):
    """A workbook with the table on its first sheet and what it shows on a second one.

    The header is styled and frozen, with an auto-filter; numbers, money, percentages and dates
    are real cells of their kind; text is always text, never a formula (see `_XlsxRows`). An
    aggregated table with a chart gets a native Excel chart beside it.

    XlsxWriter makes the workbook around the rows (styles, header, widths, filter, chart, the
    About sheet); the rows themselves are written as the sheet's XML straight into the zip
    file as they come, which is several times quicker than a library call per cell and keeps
    memory flat (docs/exports.md has the measurements).
    """
    import xlsxwriter

    columns = table.columns
    rows = iter(table.rows)
    sample = list(itertools.islice(rows, SAMPLE_ROWS))
    skeleton = io.BytesIO()
    workbook = xlsxwriter.Workbook(
        skeleton,
        {
            "in_memory": True,
            "strings_to_formulas": False,
            "strings_to_numbers": False,
            "strings_to_urls": False,
        },
    )
    sheet = workbook.add_worksheet(sheet_name(table.title))
    for index, width in enumerate(guess_widths(columns, sample)):
        sheet.set_column(index, index, width)
    header = workbook.add_format(
        {
            "bold": True,
            "font_color": "#FFFFFF",
            "bg_color": "#1F6FEB",
            "text_wrap": True,
            "valign": "vcenter",
            "border": 1,
            "border_color": "#D0D7DE",
        }
    )
    sheet.freeze_panes(1, 0)
    sheet.set_row(0, 20)
    for index, column in enumerate(columns):
        sheet.write_string(0, index, plain_text(column.label), header)
    # A placeholder range, set right once the rows are counted (see _XlsxRows.write).
    sheet.autofilter(0, 0, EXCEL_LAST_ROW, max(len(columns) - 1, 0))
    cells = _XlsxRows(workbook, columns)
    if table.chart is not None and table.aggregated:
        _add_native_chart(workbook, sheet, table.chart, anchor_column=len(columns) + 1)
    _add_about_sheet(workbook, table)
    workbook.close()
    return cells.write(skeleton, fileobj, itertools.chain(sample, rows), table.totals, progress)


# The last row of a worksheet (zero-based), the auto-filter's placeholder.
EXCEL_LAST_ROW = 1_048_575
# 30 December 1899: day 0 of Excel's dates for every date after February 1900.
EXCEL_EPOCH = datetime.datetime(1899, 12, 30)
EXCEL_EPOCH_DATE = EXCEL_EPOCH.date()
# The About sheet's row count, a number no table has, replaced once the rows are counted.
ROWS_PLACEHOLDER = "<v>987654321987</v>"
NEEDS_ESCAPING = re.compile(r"[&<>\r\x00-\x08\x0b\x0c\x0e-\x1f]")
XML_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "_x000D_"})


class _XlsxRows:
    """The rows of the first sheet as SpreadsheetML, with the formats XlsxWriter registered."""

    def __init__(self, workbook, columns):
        self.columns = columns
        self.letters = [_column_letters(index) for index in range(len(columns))]

        def xf(properties):
            # The index XlsxWriter gives the format in styles.xml (as its own cells do).
            return workbook.add_format(properties)._get_xf_index()

        self.styles = {}
        for bold in (False, True):
            base = {"bold": True} if bold else {}
            self.styles[bold] = {
                "text": xf(base) if bold else 0,
                "quoted": xf({**base, "quote_prefix": True}),
                "number": xf(base) if bold else 0,
                **{kind: xf({**base, "num_format": fmt}) for kind, fmt in NUMBER_FORMATS.items()},
            }

    def write(self, skeleton, fileobj, rows, totals, progress):
        """Copy the `skeleton` workbook to `fileobj` with the rows in its first sheet."""
        import zipfile

        first = "xl/worksheets/sheet1.xml"
        placeholder = str(EXCEL_LAST_ROW + 1)
        with (
            zipfile.ZipFile(skeleton) as source,
            # zlib's usual level: level 1 would save a second per 100,000 rows x 20 columns
            # but make files 30 % larger, and they are mailed and kept.
            zipfile.ZipFile(fileobj, "w", zipfile.ZIP_DEFLATED) as target,
        ):
            xml = source.read(first).decode().replace("<sheetData/>", "<sheetData></sheetData>")
            head, _end, tail = xml.partition("</sheetData>")
            # The used range is optional, and not known yet.
            head = re.sub(r"<dimension [^>]*/>", "", head)
            with target.open(first, "w", force_zip64=True) as out:
                out.write(head.encode())
                count = self._write_rows(out, rows, totals, progress)
                out.write(b"</sheetData>")
                # The auto-filter covers the header and the rows, not the totals.
                out.write(tail.replace(placeholder, str(count + 1)).encode())
            for info in source.infolist():
                if info.filename == first:
                    continue
                data = source.read(info.filename)
                if info.filename == "xl/workbook.xml":
                    data = data.replace(f"${placeholder}<".encode(), f"${count + 1}<".encode())
                elif info.filename.startswith("xl/worksheets/"):
                    data = data.replace(ROWS_PLACEHOLDER.encode(), f"<v>{count}</v>".encode())
                target.writestr(info, data)
        return count

    def _write_rows(self, out, rows, totals, progress):
        cell = self._cell
        letters = self.letters
        kinds = [column.kind for column in self.columns]
        plain = self.styles[False]
        pending = []
        count = 0
        for count, row in enumerate(rows, start=1):
            number = str(count + 1)
            parts = [f'<row r="{number}">']
            for index, value in enumerate(row):
                if value is not None:
                    parts.append(cell(letters[index] + number, kinds[index], value, plain))
            parts.append("</row>")
            pending.append("".join(parts))
            if count % 500 == 0:
                out.write("".join(pending).encode())
                pending.clear()
            if count % PROGRESS_EVERY == 0:
                progress(count)
        if totals is not None:
            number, bold = str(count + 2), self.styles[True]
            parts = [f'<row r="{number}">']
            for index, value in enumerate(totals):
                if value is not None:
                    parts.append(cell(letters[index] + number, kinds[index], value, bold))
            pending.append("".join(parts) + "</row>")
        out.write("".join(pending).encode())
        return count

    @staticmethod
    def _cell(ref, kind, value, styles):
        cls = value.__class__
        if cls is str:
            pass  # the commonest cell: straight to the text below, past the other checks
        elif cls is int or cls is float or cls is decimal.Decimal:
            if cls is not int and not math.isfinite(value):
                value = str(value)
            else:
                style = styles.get(kind, styles["number"]) if kind != "text" else styles["number"]
                number = repr(float(value)) if cls is decimal.Decimal else repr(value)
                return f'<c r="{ref}" s="{style}"><v>{number}</v></c>'
        elif cls is datetime.datetime or isinstance(value, datetime.datetime):
            delta = local_naive(value) - EXCEL_EPOCH
            serial = delta.days + (delta.seconds + delta.microseconds / 1e6) / 86400
            style = styles[kind] if kind in ("date", "datetime") else styles["datetime"]
            return f'<c r="{ref}" s="{style}"><v>{serial!r}</v></c>'
        elif cls is datetime.date:
            days = (value - EXCEL_EPOCH_DATE).days
            if days < 61:  # Excel counts a 29 February 1900 that never was
                days -= 1
            style = styles[kind] if kind in ("date", "datetime") else styles["date"]
            return f'<c r="{ref}" s="{style}"><v>{days}</v></c>'
        elif cls is bool:
            return f'<c r="{ref}" t="b"><v>{int(value)}</v></c>'
        if cls is not str or len(value) > MAX_CELL_TEXT:
            value = plain_text(value)
        if not value:
            return ""
        style = styles["quoted"] if value.startswith(FORMULA_STARTS) else styles["text"]
        space = ' xml:space="preserve"' if value[0].isspace() or value[-1].isspace() else ""
        if NEEDS_ESCAPING.search(value):
            value = plain_text(value).translate(XML_ESCAPES)
            if not value:
                return ""
        return f'<c r="{ref}" s="{style}" t="inlineStr"><is><t{space}>{value}</t></is></c>'


def _column_letters(index):
    letters = ""
    index += 1
    while index:
        index, remainder = divmod(index - 1, 26)
        letters = chr(65 + remainder) + letters
    return letters


def _add_native_chart(workbook, sheet, chart, *, anchor_column):
    """The chart drawn by Excel from its data, kept on a sheet of its own next to the table."""
    data = workbook.add_worksheet(sheet_name(_("Chart data")))
    data.write_string(0, 0, plain_text(chart.title or _("Category")))
    for index, (name, _values) in enumerate(chart.series, start=1):
        data.write_string(0, index, plain_text(name))
    for row, category in enumerate(chart.categories, start=1):
        data.write_string(row, 0, plain_text(category))
        for index, (_name, values) in enumerate(chart.series, start=1):
            if row <= len(values) and values[row - 1] is not None:
                data.write_number(row, index, float(values[row - 1]))
    excel = workbook.add_chart(
        {"type": {"bar": "column", "line": "line", "pie": "pie"}.get(chart.kind, "column")}
    )
    last = len(chart.categories)
    for index in range(1, len(chart.series) + 1):
        excel.add_series(
            {
                "name": [data.name, 0, index],
                "categories": [data.name, 1, 0, last, 0],
                "values": [data.name, 1, index, last, index],
            }
        )
        if chart.kind == "pie":
            break  # a pie shows one series
    if chart.title:
        excel.set_title({"name": chart.title})
    if chart.kind != "pie" and len(chart.series) == 1:
        excel.set_legend({"none": True})
    excel.set_size({"width": 640, "height": 360})
    sheet.insert_chart(1, anchor_column, excel)


def _add_about_sheet(workbook, table):
    about = workbook.add_worksheet(sheet_name(_("About")))
    about.set_column(0, 0, 24)
    about.set_column(1, 1, 60)
    bold = workbook.add_format({"bold": True})
    lines = [
        (_("Title"), table.title),
        (_("Generated at"), timezone.localtime().strftime("%Y-%m-%d %H:%M %Z")),
        (_("Rows"), None),
        *table.filters,
    ]
    for row, (label, value) in enumerate(lines):
        about.write_string(row, 0, plain_text(label), bold)
        if value is None:
            about.write_number(row, 1, int(ROWS_PLACEHOLDER[3:-4]))
        else:
            about.write_string(row, 1, plain_text(value))


# PDF --------------------------------------------------------------------------------------

# How a PDF's cells show each kind (the Excel file keeps the numbers themselves).
PDF_NUMERIC = ("integer", "decimal", "money", "percent")


def pdf_value(kind, value):
    if value is None:
        return ""
    if isinstance(value, bool):
        return _("Yes") if value else _("No")
    if isinstance(value, datetime.datetime):
        return local_naive(value).strftime("%Y-%m-%d %H:%M")
    if isinstance(value, datetime.date):
        return value.isoformat()
    if kind == "integer" and isinstance(value, int | float | decimal.Decimal):
        return f"{value:,.0f}"
    if kind in ("decimal", "money") and isinstance(value, int | float | decimal.Decimal):
        return f"{value:,.2f}"
    if kind == "percent" and isinstance(value, int | float | decimal.Decimal):
        return f"{float(value) * 100:.1f}%"
    return plain_text(value)


def _pdf_row(kinds, row, tag="td"):
    cells = []
    for kind, value in zip(kinds, row, strict=False):
        text = html.escape(pdf_value(kind, value), quote=False)
        cells.append(
            f'<{tag} class="n">{text}</{tag}>' if kind in PDF_NUMERIC else f"<{tag}>{text}</{tag}>"
        )
    return "<tr>" + "".join(cells) + "</tr>"


def pdf_row_limit_message(rows):
    return _(
        "A PDF of %(rows)s rows would be too long to read (the limit is %(limit)s rows). "
        "Narrow the filters, or export to Excel instead."
    ) % {"rows": f"{rows:,}", "limit": f"{settings.EXPORT_PDF_MAX_ROWS:,}"}


# The only user-agent styles the PDF template needs. WeasyPrint's own HTML5 stylesheet has
# hundreds of rules, matched against every one of the thousands of cells and kept with each;
# with these few instead a 1,000-row report takes about 30 % less time and 90 MB less memory
# (docs/exports.md).
PDF_USER_AGENT_CSS = """
html, body, div, h1, p, dl { display: block; }
head, title, meta, style, script { display: none; }
dt, dd, span, a, b, strong { display: inline; }
h1, th, b, strong { font-weight: bold; }
table { display: table; border-spacing: 0; }
colgroup { display: table-column-group; }
col { display: table-column; }
thead { display: table-header-group; }
tbody { display: table-row-group; }
tfoot { display: table-footer-group; }
tr { display: table-row; }
td, th { display: table-cell; vertical-align: top; }
"""

_plain_html = None


def _plain_html_class():
    """weasyprint.HTML with PDF_USER_AGENT_CSS as its user-agent stylesheet.

    `_ua_stylesheets` is WeasyPrint's own (undocumented) hook for that stylesheet; the PDF
    tests read the documents back, so a WeasyPrint that changed it would fail them.
    """
    global _plain_html
    if _plain_html is None:
        from weasyprint import CSS, HTML

        user_agent = CSS(string=PDF_USER_AGENT_CSS)

        class PlainHTML(HTML):
            def _ua_stylesheets(self, forms=False):
                return [user_agent]

        _plain_html = PlainHTML
    return _plain_html


def write_pdf(table, fileobj, *, progress):
    """An A4 landscape document: title, filters, generation time, the chart as SVG, then the
    table with its header repeated on every page, and page numbers.

    The rows are written as HTML directly (a template loop over thousands of cells costs more
    than the layout), and the table has a fixed layout with its column widths given, so
    WeasyPrint need not measure every cell twice. Refused above EXPORT_PDF_MAX_ROWS.
    """
    from django.template.loader import render_to_string

    limit = settings.EXPORT_PDF_MAX_ROWS
    if table.row_count is not None and table.row_count > limit:
        raise ExportRefused(pdf_row_limit_message(table.row_count))
    kinds = [column.kind for column in table.columns]
    rows = iter(table.rows)
    sample = list(itertools.islice(rows, SAMPLE_ROWS))
    widths = guess_widths(table.columns, sample)
    body = []
    count = 0
    for count, row in enumerate(itertools.chain(sample, rows), start=1):
        if count > limit:
            raise ExportRefused(pdf_row_limit_message(table.row_count or count))
        body.append(_pdf_row(kinds, row))
    progress(count // 5)
    total = sum(widths) or 1
    context = {
        "table": table,
        "columns": [
            {"label": c.label, "numeric": c.kind in PDF_NUMERIC, "width": 100 * w / total}
            for c, w in zip(table.columns, widths, strict=True)
        ],
        # Escaped cell by cell in _pdf_row; the chart's texts in chart_svg.
        "body": mark_safe("\n".join(body)),
        "totals": mark_safe(_pdf_row(kinds, table.totals)) if table.totals is not None else "",
        "chart": mark_safe(chart_svg(table.chart)) if table.chart else "",
        "generated_at": timezone.localtime(),
        "rows": count,
    }
    document = _plain_html_class()(
        string=render_to_string("reports/pdf/table.html", context),
        base_url=str(settings.BASE_DIR),
    ).render()
    progress(count * 4 // 5)
    document.write_pdf(fileobj)
    progress(count)
    return count


# Charts -----------------------------------------------------------------------------------

PALETTE = ("#1f6feb", "#2e9d57", "#f0b429", "#d64545", "#8e6cc8", "#17a2b8", "#e8743b", "#5b7083")
# The CJK fonts named first, so that Chinese labels never fall back to boxes.
CHART_FONT = (
    "'Noto Sans CJK SC', 'Noto Sans SC', 'Source Han Sans SC', 'Microsoft YaHei', sans-serif"
)


def chart_options(chart):
    """ECharts options drawing `chart` in the browser (the page adds colours and tooltips)."""
    options = {"title": {"text": chart.title}, "tooltip": {}, "color": list(PALETTE)}
    if chart.kind == "pie":
        name, values = chart.series[0] if chart.series else ("", [])
        options["legend"] = {"type": "scroll", "bottom": 0}
        options["series"] = [
            {
                "type": "pie",
                "name": name,
                "radius": ["35%", "65%"],
                "data": [
                    {"name": category, "value": value}
                    for category, value in zip(chart.categories, values, strict=False)
                ],
            }
        ]
        return options
    options["legend"] = {"type": "scroll", "bottom": 0, "show": len(chart.series) > 1}
    options["grid"] = {"left": 8, "right": 8, "top": 40, "bottom": 36, "containLabel": True}
    options["xAxis"] = {"type": "category", "data": list(chart.categories)}
    options["yAxis"] = {"type": "value"}
    options["series"] = [
        {"type": "line" if chart.kind == "line" else "bar", "name": name, "data": list(values)}
        for name, values in chart.series
    ]
    return options


def chart_svg(chart, *, width=720, height=320):
    """The same chart as an SVG drawing (PDFs), with its texts escaped.

    Bars and lines get an axis from zero to a round maximum with five steps; a pie shows the
    first series with each slice's share in its legend.
    """
    width, height = int(width), int(height)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="{CHART_FONT}" font-size="11">'
    ]
    top = 10
    if chart.title:
        parts.append(_svg_text(width / 2, 18, chart.title, anchor="middle", size=14, bold=True))
        top = 32
    if chart.kind == "pie":
        parts.extend(_svg_pie(chart, width, height, top))
    else:
        parts.extend(_svg_axes(chart, width, height, top))
    parts.append("</svg>")
    return "".join(parts)


def _svg_text(x, y, text, *, anchor="start", size=11, bold=False, fill="#24292f", rotate=None):
    extra = ' font-weight="bold"' if bold else ""
    if rotate is not None:
        extra += f' transform="rotate({rotate} {x:.1f} {y:.1f})"'
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="{size}" '
        f'fill="{fill}"{extra}>{html.escape(str(text))}</text>'
    )


def _nice_maximum(value):
    if value <= 0:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * magnitude:
            return step * magnitude
    return 10 * magnitude


def _short_number(value):
    if abs(value) >= 10_000:
        return f"{value / 10_000:g}万" if get_language_prefix() == "zh" else f"{value / 1000:,.0f}k"
    return f"{value:,.0f}" if value == int(value) else f"{value:,.1f}"


def get_language_prefix():
    from django.utils import translation

    return (translation.get_language() or "en")[:2]


def _shorten(text, length):
    text = str(text)
    return text if _display_width(text) <= length else text[: max(1, length // 2)] + "…"


def _svg_axes(chart, width, height, top):
    values = [float(v or 0) for _name, series in chart.series for v in series]
    maximum = _nice_maximum(max(values, default=0))
    minimum = min(0.0, min(values, default=0))
    legend = len(chart.series) > 1
    left, right, bottom = 56, 12, 48 + (20 if legend else 0)
    plot_width, plot_height = width - left - right, height - top - bottom
    count = max(1, len(chart.categories))
    parts = []
    span = (maximum - minimum) or 1

    def y_of(value):
        return top + plot_height * (1 - (value - minimum) / span)

    for step in range(6):
        value = minimum + span * step / 5
        y = y_of(value)
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" '
            f'stroke="#d0d7de" stroke-width="0.5"/>'
        )
        parts.append(_svg_text(left - 6, y + 4, _short_number(value), anchor="end", size=10))
    slot = plot_width / count
    rotate = count > 8
    for index, category in enumerate(chart.categories):
        x = left + slot * (index + 0.5)
        label = _shorten(category, 12 if rotate else max(4, int(slot / 7)))
        if rotate:
            parts.append(
                _svg_text(x, top + plot_height + 12, label, anchor="end", size=10, rotate=-35)
            )
        else:
            parts.append(_svg_text(x, top + plot_height + 16, label, anchor="middle", size=10))
    series_count = max(1, len(chart.series))
    for number, (_name, series) in enumerate(chart.series):
        color = PALETTE[number % len(PALETTE)]
        if chart.kind == "line":
            points = " ".join(
                f"{left + slot * (i + 0.5):.1f},{y_of(float(v or 0)):.1f}"
                for i, v in enumerate(series[:count])
            )
            parts.append(
                f'<polyline points="{points}" fill="none" stroke="{color}" stroke-width="2"/>'
            )
            continue
        bar = slot * 0.7 / series_count
        for i, value in enumerate(series[:count]):
            value = float(value or 0)
            x = left + slot * i + slot * 0.15 + bar * number
            y0, y1 = y_of(max(value, 0)), y_of(min(value, 0))
            parts.append(
                f'<rect x="{x:.1f}" y="{y0:.1f}" width="{bar:.1f}" '
                f'height="{max(0.5, y1 - y0):.1f}" fill="{color}"/>'
            )
    parts.append(
        f'<line x1="{left}" y1="{y_of(0):.1f}" x2="{width - right}" y2="{y_of(0):.1f}" '
        f'stroke="#57606a" stroke-width="1"/>'
    )
    if legend:
        x = left
        for number, (name, _series) in enumerate(chart.series):
            color = PALETTE[number % len(PALETTE)]
            parts.append(f'<rect x="{x}" y="{height - 16}" width="10" height="10" fill="{color}"/>')
            parts.append(_svg_text(x + 14, height - 7, name, size=10))
            x += 24 + 7 * _display_width(name)
    return parts


def _svg_pie(chart, width, height, top):
    _name, values = chart.series[0] if chart.series else ("", [])
    values = [max(0.0, float(v or 0)) for v in values]
    total = sum(values)
    radius = (height - top - 16) / 2
    cx, cy = 16 + radius, top + 8 + radius
    parts = []
    angle = -math.pi / 2
    for index, value in enumerate(values):
        if not total or not value:
            continue
        color = PALETTE[index % len(PALETTE)]
        if value == total:
            parts.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="{radius:.1f}" fill="{color}"/>')
            break
        sweep = 2 * math.pi * value / total
        x0, y0 = cx + radius * math.cos(angle), cy + radius * math.sin(angle)
        angle += sweep
        x1, y1 = cx + radius * math.cos(angle), cy + radius * math.sin(angle)
        large = 1 if sweep > math.pi else 0
        parts.append(
            f'<path d="M{cx:.1f},{cy:.1f} L{x0:.1f},{y0:.1f} '
            f'A{radius:.1f},{radius:.1f} 0 {large} 1 {x1:.1f},{y1:.1f} Z" '
            f'fill="{color}" stroke="#ffffff" stroke-width="1"/>'
        )
    x = cx + radius + 32
    for index, (category, value) in enumerate(zip(chart.categories, values, strict=False)):
        y = top + 12 + index * 18
        if y > height - 8:
            break
        color = PALETTE[index % len(PALETTE)]
        share = f"{100 * value / total:.1f}%" if total else "–"
        parts.append(f'<rect x="{x:.1f}" y="{y - 9:.1f}" width="10" height="10" fill="{color}"/>')
        parts.append(
            _svg_text(x + 16, y, f"{_shorten(category, 24)}  {_short_number(value)} ({share})")
        )
    return parts


# Building tables from a stored description -------------------------------------------------


def build_table(spec, user):
    """The table a stored description (a GeneratedFile's spec) stands for, seen by `user`.

    Runs with the user's permissions as they are now: a customer list re-applies the customers
    they may see and the filters they chose.
    """
    kind = spec.get("kind")
    if kind == "customers":
        from reports.customer_export import customer_table

        return customer_table(spec.get("query", {}), user)
    if kind == "analysis":
        from reports.analysis import table_from_spec

        return table_from_spec(spec, user)
    if kind == "report":
        from reports.reporting import table_from_spec

        return table_from_spec(spec, user)
    if kind == "test":
        # Tables made by the test suite and the benchmark: fixed rows, no data access.
        return _test_table(spec)
    raise ValueError(f"Unknown table kind {kind!r}.")


def _test_table(spec):
    columns = [Column(label, kind) for label, kind in spec["columns"]]
    rows = [_from_json(row, columns) for row in spec["rows"]] * spec.get("repeat", 1)
    if spec.get("fail"):
        raise RuntimeError(spec["fail"])
    return Table(title=spec.get("title", "Test"), columns=columns, rows=rows, row_count=len(rows))


def _from_json(row, columns):
    values = []
    for value, column in zip(row, columns, strict=False):
        if value is not None and column.kind == "date":
            value = datetime.date.fromisoformat(value)
        elif value is not None and column.kind == "datetime":
            value = datetime.datetime.fromisoformat(value)
        elif value is not None and column.kind in ("decimal", "money"):
            value = decimal.Decimal(value)
        values.append(value)
    return values


# Sending ----------------------------------------------------------------------------------


def export_response(request, table, fmt, *, what):
    """A file to download at once, built in memory (small tables only), recorded in the audit
    trail with `what` was exported, its filters and the row count."""
    from accounts import audit

    buffer = io.BytesIO()
    rows = write(table, fmt, buffer)
    audit.record(
        audit.Action.EXPORT,
        request=request,
        data={
            "what": what,
            "format": fmt,
            "rows": rows,
            "filters": [[label, value] for label, value in table.filters],
        },
    )
    response = HttpResponse(buffer.getvalue(), content_type=CONTENT_TYPES[fmt])
    response["Content-Disposition"] = _attachment(filename(table, fmt))
    return response


def _attachment(name):
    from django.utils.http import content_disposition_header

    return content_disposition_header(as_attachment=True, filename=name)


# Measuring ---------------------------------------------------------------------------------


def measure_exports(*, rows=100_000, columns=20, pdf_rows=1_000):
    """Time and peak memory of writing an Excel file of `rows` x `columns`, a CSV file of the
    same, and a PDF of `pdf_rows` customer-list rows (13 columns, Chinese names).

    Each is written by a fresh child process (`python -c`), which reports the seconds spent
    writing and its own peak resident memory (VmHWM, so the interpreter and
    Django count too). The rows are made up in memory, so this measures the writers, not the
    database. `make bench` calls it.
    """
    import json
    import os
    import subprocess
    import sys

    results = {}
    for fmt, count in (("xlsx", rows), ("csv", rows), ("pdf", pdf_rows)):
        completed = subprocess.run(
            [sys.executable, "-c", "from reports.exports import _measure_child as m; m()"]
            + [fmt, str(count), str(columns)],
            cwd=settings.BASE_DIR,
            env={**os.environ, "DJANGO_SETTINGS_MODULE": "cims.settings"},
            capture_output=True,
            text=True,
            check=True,
        )
        results[fmt] = json.loads(completed.stdout.strip().splitlines()[-1])
    return results


def bench_table(fmt, count, columns):
    """A made-up table for measuring: the customer list's columns for PDFs, else `columns`
    columns of every kind in turn."""
    names = "张王李赵刘陈杨黄周吴徐孙胡朱高林何郭马罗"
    now = timezone.now()
    if fmt == "pdf":
        cols = [
            *(Column(label) for label in ("姓名", "公司", "手机", "邮箱", "省份", "城市")),
            *(Column(label) for label in ("状态", "来源", "标签", "负责人", "团队")),
            Column("创建时间", "datetime"),
            Column("订单金额", "money"),
        ]

        def pdf_rows():
            for n in range(count):
                yield (
                    f"{names[n % 20]}{names[n * 7 % 20]}伟", f"上海华东贸易有限公司{n % 97}",
                    "138****8000", "z***@example.com", "上海市", "浦东新区", "活跃", "门店",
                    "vip; 新客", "林梅", "华东销售", now, decimal.Decimal(n * 13) / 10,
                )  # fmt: skip

        chart = Chart(
            "bar", ["上海市", "北京市", "广东省", "浙江省"], [("客户数", [420, 310, 150, 120])]
        )
        return Table("客户列表", cols, pdf_rows(), [("省份", "全部")], chart=chart, row_count=count)
    kinds = ["text", "integer", "money", "percent", "date", "datetime", "text", "decimal"]
    cols = [Column(f"列{i + 1}", kinds[i % len(kinds)]) for i in range(columns)]
    values = {
        "integer": 12345,
        "money": decimal.Decimal("1234.50"),
        "percent": 0.125,
        "date": datetime.date(2025, 3, 1),
        "datetime": now,
        "decimal": 3.75,
    }
    kinds = [column.kind for column in cols]

    def rows():
        for n in range(count):
            yield [f"{names[n % 20]}客户{n}" if kind == "text" else values[kind] for kind in kinds]

    return Table("导出测试", cols, rows(), row_count=count)


def _peak_memory_mb():
    """This program's peak resident memory. Not getrusage's ru_maxrss, which Linux carries
    over from the parent through fork and exec: a child of a large process would report the
    parent's size."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("No VmHWM in /proc/self/status")


def _measure_child():
    import json
    import resource
    import sys
    import tempfile
    import time

    import django

    django.setup()
    fmt, count, columns = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    table = bench_table(fmt, count, columns)
    baseline = _peak_memory_mb()
    with tempfile.TemporaryFile() as out:
        before = resource.getrusage(resource.RUSAGE_SELF)
        started = time.perf_counter()
        written = write(table, fmt, out)
        seconds = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_SELF)
        size = out.tell()
    figures = {
        "rows": written,
        "columns": len(table.columns),
        "seconds": round(seconds, 2),
        # Processor time: the same as seconds on a quiet machine, and a fairer figure on a
        # busy one.
        "cpu_seconds": round(
            after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 2
        ),
        "peak_mb": round(_peak_memory_mb()),
        # The process before writing (interpreter, Django and the app's modules).
        "baseline_mb": round(baseline),
        "bytes": size,
    }
    print(json.dumps(figures))
