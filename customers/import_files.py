"""Reading the files customers are imported from: CSV in any usual encoding and XLSX.

CSV: the encoding is UTF-8 (with or without a byte-order mark) when the whole file decodes as
UTF-8, otherwise GB18030, a superset of GBK, which Chinese Excel writes; a file that is neither is
refused. The delimiter (comma, semicolon or tab) is found by csv.Sniffer on the first lines,
falling back to the one the header line holds most of.

XLSX: the first worksheet, read row by row by openpyxl in read-only mode, so memory stays flat
however long the sheet is. The sheet's declared size is ignored (one stray cell in XFD1048576
would otherwise pad every row to 16,384 cells and add a million empty rows): the header row ends
at its last value, and rows are read no wider than one cell past it. Before openpyxl opens it,
the archive's declared sizes are checked
(zipfile stops reading a member at its declared size, so they bound what unpacking produces): a
zip bomb is refused with a clear message. openpyxl parses the XML through defusedxml, which
refuses entity declarations (the "billion laughs" attack); that refusal is reported too.

Cells are never evaluated: a formula in a spreadsheet is read as its text.
"""

import codecs
import csv
import zipfile
import zlib
from dataclasses import dataclass, field

from django.conf import settings
from django.utils.translation import gettext as _

# csv.Sniffer's patterns take time in the square of the sample's length on some text (quotes
# that never close): the sample stays small enough to be sniffed in well under a second.
SNIFF_BYTES = 16 * 1024
DELIMITERS = ",;\t"
# csv's default limit is 128 KiB per cell; notes can be long, but not longer than this.
MAX_CELL_CHARS = 1024 * 1024
ZIP_MAGIC = b"PK\x03\x04"
OLE_MAGIC = b"\xd0\xcf\x11\xe0"  # the old binary .xls format


class ImportFileError(Exception):
    """A file that cannot be imported at all; the message is for the user."""


@dataclass
class FileInfo:
    format: str  # "csv" or "xlsx"
    encoding: str = ""
    delimiter: str = ""
    headers: list = field(default_factory=list)
    sample: list = field(default_factory=list)


def detect_format(path, name=""):
    with open(path, "rb") as file:
        head = file.read(8)
    if head.startswith(ZIP_MAGIC):
        return "xlsx"
    if head.startswith(OLE_MAGIC) or name.lower().endswith(".xls"):
        raise ImportFileError(
            _("Old Excel files (.xls) cannot be read: save the sheet as .xlsx or as CSV.")
        )
    if name.lower().endswith((".xlsx", ".xlsm")):
        raise ImportFileError(_("This file is not a valid .xlsx spreadsheet."))
    return "csv"


def inspect(path, name="", sample_rows=5):
    """What the file is, its header and first rows; ImportFileError if it cannot be read."""
    file_format = detect_format(path, name)
    info = FileInfo(format=file_format)
    if file_format == "csv":
        info.encoding = detect_encoding(path)
        info.delimiter = detect_delimiter(path, info.encoding)
    else:
        check_xlsx_archive(path)
    rows = iter_rows(path, info)
    info.headers = read_header(rows)
    if not any(h.strip() for h in info.headers):
        raise ImportFileError(_("The first row must hold the column names; it is empty."))
    for _number, row in zip(range(sample_rows), rows, strict=False):
        info.sample.append([_sample_text(v) for v in row])
    rows.close()
    return info


def read_header(rows):
    """The column names from the first row of `rows`, as text.

    ImportFileError when the file is empty or has more columns than IMPORT_MAX_COLUMNS (a
    mapping page of thousands of columns helps nobody, and its form could not be sent).
    """
    from customers.import_fields import cell_text

    try:
        cells = next(rows)
    except StopIteration:
        raise ImportFileError(_("The file is empty.")) from None
    limit = settings.IMPORT_MAX_COLUMNS
    if len(cells) > limit:
        raise ImportFileError(
            _(
                "The file has %(count)s columns; at most %(max)s can be imported. Delete the "
                "columns you do not need, or save only the customers' sheet, and try again."
            )
            % {"count": f"{len(cells):,}", "max": f"{limit:,}"}
        )
    # cell_text: a NUL byte, which PostgreSQL cannot store, is dropped.
    return [cell_text(cell) for cell in cells]


def _sample_text(value):
    from customers.import_fields import cell_text

    return cell_text(value)


def detect_encoding(path):
    """'utf-8-sig' when the whole file is UTF-8, else 'gb18030'; ImportFileError if neither."""
    for encoding in ("utf-8-sig", "gb18030"):
        decoder = codecs.getincrementaldecoder(encoding)("strict")
        try:
            with open(path, "rb") as file:
                while chunk := file.read(1024 * 1024):
                    decoder.decode(chunk)
                decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            continue
        return encoding
    raise ImportFileError(
        _("The file's text is neither UTF-8 nor GBK/GB18030. Save it as “CSV UTF-8” and try again.")
    )


def detect_delimiter(path, encoding):
    with open(path, encoding=encoding, newline="") as file:
        sample = file.read(SNIFF_BYTES)
    lines = sample.splitlines()
    # The last line of the sample may be cut short.
    sample = "\n".join(lines[:20])
    try:
        return csv.Sniffer().sniff(sample, delimiters=DELIMITERS).delimiter
    except csv.Error:
        header = lines[0] if lines else ""
        counts = {d: header.count(d) for d in DELIMITERS}
        best = max(counts, key=counts.get)
        return best if counts[best] else ","


def check_xlsx_archive(path):
    """Refuse archives that are not spreadsheets, or that unpack to far more than they weigh."""
    limit = settings.IMPORT_XLSX_MAX_UNPACKED_BYTES
    ratio = settings.IMPORT_XLSX_MAX_RATIO
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError):
        raise ImportFileError(_("This file is not a valid .xlsx spreadsheet.")) from None
    if len(members) > 10_000:
        raise ImportFileError(_("This file is not a valid .xlsx spreadsheet."))
    names = {m.filename for m in members}
    if "[Content_Types].xml" not in names:
        raise ImportFileError(_("This file is not a valid .xlsx spreadsheet."))
    total = sum(m.file_size for m in members)
    suspicious = any(
        m.file_size > 1024 * 1024 and m.file_size > ratio * max(m.compress_size, 1) for m in members
    )
    if total > limit or suspicious:
        raise ImportFileError(
            _(
                "This spreadsheet unpacks to far more data than it holds (%(size)s MB), as a “zip "
                "bomb” does; it was not opened. Save it again from your spreadsheet program, or "
                "as CSV."
            )
            % {"size": f"{total / 1024**2:,.0f}"}
        )


def iter_rows(path, info):
    """Every row of the file as a list of cells, the header first."""
    if info.format == "csv":
        return _csv_rows(path, info.encoding, info.delimiter)
    return _xlsx_rows(path)


def _csv_rows(path, encoding, delimiter):
    csv.field_size_limit(MAX_CELL_CHARS)
    with open(path, encoding=encoding, newline="") as file:
        # Strict: a quote that is never closed is an error, not a last cell holding the rest of
        # the file (whose rows would silently go missing).
        reader = csv.reader(file, delimiter=delimiter, strict=True)
        started = 1
        try:
            for row in reader:
                yield row
                started = reader.line_num + 1
        except csv.Error as error:
            raise ImportFileError(
                _(
                    "The row that starts on line %(line)d of the file cannot be read as CSV "
                    '(%(error)s). The usual cause is a quotation mark (") that is not closed.'
                )
                % {"line": started, "error": error}
            ) from None


def _xlsx_rows(path):
    from defusedxml import DefusedXmlException
    from openpyxl import load_workbook

    check_xlsx_archive(path)
    try:
        workbook = load_workbook(path, read_only=True, data_only=False)
    except Exception as error:
        # openpyxl raises many kinds of errors for a damaged or foreign file, and wraps
        # defusedxml's refusal in one of them.
        if _caused_by(error, DefusedXmlException):
            raise ImportFileError(_entity_message()) from None
        raise ImportFileError(_("This file is not a valid .xlsx spreadsheet.")) from None
    try:
        sheet = workbook.worksheets[0] if workbook.worksheets else None
        if sheet is None:
            return
        sheet.reset_dimensions()
        try:
            header = list(next(sheet.iter_rows(max_row=1, values_only=True), ()))
            while header and header[-1] in (None, ""):
                header.pop()
            yield header
            # One cell past the header, so that a row longer than it is still reported.
            for row in sheet.iter_rows(min_row=2, max_col=len(header) + 1, values_only=True):
                yield list(row)
        except DefusedXmlException:
            raise ImportFileError(_entity_message()) from None
        # SyntaxError: the XML parsers' errors (ElementTree's ParseError, lxml's) derive from it.
        except (
            KeyError,
            ValueError,
            TypeError,
            SyntaxError,
            zipfile.BadZipFile,
            zlib.error,
            EOFError,
        ) as error:
            raise ImportFileError(
                _("The spreadsheet is damaged and cannot be read (%(error)s).")
                % {"error": type(error).__name__}
            ) from None
    finally:
        workbook.close()


def _caused_by(error, kind):
    while error is not None:
        if isinstance(error, kind):
            return True
        error = error.__cause__ or error.__context__
    return False


def _entity_message():
    return _(
        "This spreadsheet declares XML entities, which can be used to attack the server; it was "
        "not read. Save it again from your spreadsheet program, or as CSV."
    )
