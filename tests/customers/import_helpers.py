"""Files and imports for the import tests."""

import csv
import io

import pytest
from django.core.files.base import ContentFile

from customers import imports
from customers.import_fields import suggest
from customers.import_files import inspect
from customers.models import CustomerImport, CustomField

HEADERS = ["姓名", "手机", "邮箱", "生日", "公司", "状态", "性别", "来源", "标签", "客户编号"]


def csv_bytes(rows, *, encoding="utf-8", delimiter=",", headers=HEADERS):
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(headers)
    writer.writerows(rows)
    return out.getvalue().encode(encoding)


def xlsx_bytes(rows, headers=HEADERS):
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.append(headers)
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def make_import(user, content, name="customers.csv", on_duplicate="skip", mapping=None):
    """An uploaded, mapped import (as the wizard leaves it before the check)."""
    job = CustomerImport(user=user, file_name=name, file_size=len(content))
    job.file.save(name, ContentFile(content), save=False)
    info = inspect(job.file.path, name)
    job.file_format, job.encoding, job.delimiter = info.format, info.encoding, info.delimiter
    job.headers, job.sample = info.headers, info.sample
    custom = list(CustomField.objects.filter(active=True))
    columns = mapping if mapping is not None else suggest(info.headers, custom)
    job.mapping = {str(k): v for k, v in columns.items()}
    job.on_duplicate = on_duplicate
    job.save()
    return job


def run_import(user, content, **kwargs):
    job = make_import(user, content, **kwargs)
    CustomerImport.objects.filter(pk=job.pk).update(state="running")
    job.refresh_from_db()
    outcome = imports.execute(job, dry_run=False)
    job.refresh_from_db()
    return job, outcome


def check_import(user, content, **kwargs):
    job = make_import(user, content, **kwargs)
    CustomerImport.objects.filter(pk=job.pk).update(state="checking")
    job.refresh_from_db()
    outcome = imports.execute(job, dry_run=True)
    job.refresh_from_db()
    return job, outcome


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    """Uploaded files and reports go to a directory of the test's own."""
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT
