"""Excel workbooks written a row at a time, whose cells show exactly what they hold.

Exports build write-only workbooks (openpyxl keeps no rows in memory) from `safe_cell` cells:
numbers and times stay numbers and times a spreadsheet can sum and sort, and text stays text,
also text that a spreadsheet would otherwise run as a formula.
"""

import datetime
import decimal
import json
import tempfile

from django.utils import timezone
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter

# A spreadsheet runs a cell that starts with one of these as a formula (or as a command, in
# the case of tab and carriage return when the cell is copied out and pasted back).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# Excel's limit on the characters of one cell.
MAX_CELL_TEXT = 32_767

DATE_FORMAT = "yyyy-mm-dd"
DATETIME_FORMAT = "yyyy-mm-dd hh:mm"
PERCENT_FORMAT = "0.0%"
DECIMAL_FORMAT = "0.00"

HEADER_FONT = Font(bold=True, color="FFFFFF")
HEADER_FILL = PatternFill("solid", fgColor="1F6FEB")
HEADER_ALIGNMENT = Alignment(vertical="center", wrap_text=True)
SECTION_FONT = Font(bold=True)


def safe_cell(sheet, value, *, number_format=None, font=None):
    """A cell of the write-only `sheet` that holds `value` as what it is.

    Numbers (not booleans) stay numbers, dates and times become spreadsheet dates (times in the
    current time zone, since spreadsheets know none), lists are joined, and text is always text:
    one that starts like a formula (=, +, -, @, tab, CR) is marked as text with Excel's quote
    prefix instead of being run. Characters a workbook cannot hold are dropped, and text is cut
    to what a cell can take.
    """
    value = _plain(value)
    cell = WriteOnlyCell(sheet, value)
    if isinstance(value, str):
        # Set after the value: openpyxl takes text starting with "=" for a formula, and "#N/A"
        # and the like for errors.
        cell.data_type = "s"
        if value.startswith(FORMULA_STARTS):
            cell.quotePrefix = True
    elif isinstance(value, datetime.datetime):
        cell.number_format = DATETIME_FORMAT
    elif isinstance(value, datetime.date):
        cell.number_format = DATE_FORMAT
    if number_format:
        cell.number_format = number_format
    if font is not None:
        cell.font = font
    return cell


def _plain(value):
    if value is None or isinstance(value, bool | int | float | decimal.Decimal):
        return value
    if isinstance(value, datetime.datetime):
        if timezone.is_aware(value):
            value = timezone.localtime(value)
        return value.replace(tzinfo=None)
    if isinstance(value, datetime.date):
        return value
    if isinstance(value, list | tuple):
        value = "; ".join(str(item) for item in value)
    elif isinstance(value, dict):
        value = json.dumps(value, ensure_ascii=False, sort_keys=True)
    text = ILLEGAL_CHARACTERS_RE.sub("", str(value))
    return text[:MAX_CELL_TEXT]


def header_cells(sheet, labels):
    cells = []
    for label in labels:
        cell = safe_cell(sheet, str(label))
        cell.font, cell.fill, cell.alignment = HEADER_FONT, HEADER_FILL, HEADER_ALIGNMENT
        cells.append(cell)
    return cells


def table_sheet(workbook, title, labels, widths=()):
    """A write-only sheet with a styled header row that stays in view when scrolling.

    Column widths must be set before the first row; call `add_filter` once the rows are in.
    """
    sheet = workbook.create_sheet(title=title[:31])
    for index, width in enumerate(widths, start=1):
        sheet.column_dimensions[get_column_letter(index)].width = width
    sheet.freeze_panes = "A2"
    sheet.append(header_cells(sheet, labels))
    return sheet


def add_filter(sheet, columns, rows):
    """Put an auto-filter on the header of a table of `columns` and `rows` (header included)."""
    sheet.auto_filter.ref = f"A1:{get_column_letter(max(1, columns))}{max(1, rows)}"


def new_workbook():
    return Workbook(write_only=True)


def save_to_temporary_file(workbook):
    """Save `workbook` to an unnamed temporary file, rewound for reading.

    Rows already went to openpyxl's own temporary files as they were added; the file is read
    out in chunks by a FileResponse, so a large export never sits in memory.
    """
    file = tempfile.TemporaryFile()  # noqa: SIM115 (the response closes it)
    workbook.save(file)
    file.seek(0)
    return file
