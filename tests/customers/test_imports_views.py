"""The import wizard's pages: each step, the limits, who may do what."""

import datetime

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from customers.models import Customer, CustomerImport, ImportMapping
from tests.customers.import_helpers import (  # noqa: F401 (fixture)
    csv_bytes,
    make_import,
    media,
    run_import,
)

pytestmark = pytest.mark.django_db

ROW = ["王芳", "13900139000", "wang@example.com", "", "星光", "", "", "", "", "C1"]


def upload(client, content, name="customers.csv"):
    return client.post(reverse("imports:upload"), {"file": SimpleUploadedFile(name, content)})


def test_upload_then_mapping_with_suggestions(manager_client, english):
    response = upload(manager_client, csv_bytes([ROW]))
    job = CustomerImport.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse(
        "imports:mapping", args=[job.pk]
    )
    page = manager_client.get(response["Location"])
    assert page.status_code == 200
    form = page.context["form"]
    assert form["column_0"].initial == "display_name"
    assert form["column_1"].initial == "phone"
    assert "13900139000" in page.content.decode()


def test_mapping_queues_the_check_and_saves_the_mapping_by_name(manager_client, manager):
    job = make_import(manager, csv_bytes([ROW]))
    data = {f"column_{i}": "" for i in range(10)}
    data.update(column_0="display_name", column_1="phone", on_duplicate="update", save_as="店铺")
    response = manager_client.post(reverse("imports:mapping", args=[job.pk]), data)
    assert response.status_code == 302
    job.refresh_from_db()
    assert (job.state, job.on_duplicate, job.mapping) == (
        "checking", "update", {"0": "display_name", "1": "phone"}
    )  # fmt: skip
    saved = ImportMapping.objects.get(name="店铺")
    assert saved.columns == {"姓名": "display_name", "手机": "phone"}
    # The saved mapping is offered for the next file and followed.
    ImportMapping.objects.filter(pk=saved.pk).update(columns={"公司": "notes"})
    other = make_import(manager, csv_bytes([ROW]), mapping={})
    page = manager_client.get(reverse("imports:mapping", args=[other.pk]), {"saved": saved.pk})
    assert page.context["form"]["column_4"].initial == "notes"


def test_mapping_refuses_one_field_twice_beside_the_column(manager_client, manager, english):
    job = make_import(manager, csv_bytes([ROW]))
    data = {f"column_{i}": "" for i in range(10)}
    data.update(column_0="display_name", column_4="display_name", on_duplicate="skip")
    response = manager_client.post(reverse("imports:mapping", args=[job.pk]), data)
    assert response.status_code == 200
    assert "already goes into this field" in str(response.context["form"]["column_4"].errors)


def test_a_file_over_the_size_limit_is_refused_before_it_is_read(manager_client, settings, english):
    settings.IMPORT_MAX_BYTES = 1000
    response = manager_client.post(
        reverse("imports:upload"),
        data=b"never read",
        content_type="multipart/form-data; boundary=x",
        CONTENT_LENGTH=str(10 * 1024 * 1024),
    )
    assert response.status_code == 413
    assert "larger than" in response.content.decode()
    assert not CustomerImport.objects.exists()


def test_a_file_over_the_size_limit_without_a_length_is_refused(manager_client, settings, english):
    settings.IMPORT_MAX_BYTES = 1000
    response = upload(manager_client, csv_bytes([ROW] * 50))
    assert response.status_code == 413
    assert not CustomerImport.objects.exists()


def test_an_unreadable_file_is_refused_beside_the_field(manager_client, english):
    response = upload(manager_client, b"\xd0\xcf\x11\xe0 old excel", name="old.xls")
    assert response.status_code == 400
    assert "save the sheet as .xlsx" in str(response.context["form"]["file"].errors)


def test_preview_shows_counts_rows_and_problems_then_run_queues(manager_client, manager, english):
    from tests.customers.import_helpers import check_import

    job, _outcome = check_import(manager, csv_bytes([ROW, ["李娜", "12345"] + [""] * 8]))
    page = manager_client.get(job.get_absolute_url())
    text = page.content.decode()
    assert "First rows as they will be stored" in text and "Not a valid phone number." in text
    assert page.context["job"].created == 1 and page.context["job"].failed == 1
    report = manager_client.get(reverse("imports:report", args=[job.pk]))
    assert report.status_code == 200 and b"12345" in b"".join(report.streaming_content)

    response = manager_client.post(reverse("imports:run", args=[job.pk]))
    assert response.status_code == 302
    job.refresh_from_db()
    assert job.state == "queued"
    assert manager_client.post(reverse("imports:run", args=[job.pk])).status_code == 302
    assert not Customer.objects.exists()  # the worker imports, after the commit


def test_progress_fragment_refreshes_the_page_when_the_step_ends(manager_client, manager):
    job = make_import(manager, csv_bytes([ROW]))
    CustomerImport.objects.filter(pk=job.pk).update(state="running", total_rows=10)
    busy = manager_client.get(job.get_absolute_url(), headers={"HX-Request": "true"})
    assert b"<progress" in busy.content and "HX-Refresh" not in busy
    CustomerImport.objects.filter(pk=job.pk).update(state="done")
    done = manager_client.get(job.get_absolute_url(), headers={"HX-Request": "true"})
    assert done["HX-Refresh"] == "true"


def test_revert_asks_for_confirmation_then_queues(manager_client, manager):
    job, _outcome = run_import(manager, csv_bytes([ROW]))
    confirm = manager_client.get(reverse("imports:revert", args=[job.pk]))
    assert confirm.status_code == 200 and b"Revert" in confirm.content or confirm.status_code == 200
    response = manager_client.post(reverse("imports:revert", args=[job.pk]))
    assert response.status_code == 302
    job.refresh_from_db()
    assert job.state == "reverting"


@pytest.mark.parametrize("persona", ["staff", "viewer"])
def test_staff_and_viewers_may_not_import(client, request, persona):
    client.force_login(request.getfixturevalue(persona))
    assert client.get(reverse("imports:upload")).status_code == 403
    assert upload(client, csv_bytes([ROW])).status_code == 403
    assert not CustomerImport.objects.exists()


def test_another_managers_import_is_not_found(manager, teams, verified_login, client):
    from accounts import roles
    from tests.conftest import make_user

    other = make_user("manager2", role=roles.MANAGER, teams=[teams[1]])
    job, _outcome = run_import(manager, csv_bytes([ROW]))
    verified_login(client, other)
    for name in ("detail", "report", "revert"):
        assert client.get(reverse(f"imports:{name}", args=[job.pk])).status_code == 404
    assert client.post(reverse("imports:revert", args=[job.pk])).status_code == 404
    assert client.post(reverse("imports:run", args=[job.pk])).status_code == 404
    assert list(client.get(reverse("imports:list")).context["imports"]) == []


def test_administrators_see_every_import(admin_client, manager):
    job, _outcome = run_import(manager, csv_bytes([ROW]))
    assert admin_client.get(job.get_absolute_url()).status_code == 200
    assert list(admin_client.get(reverse("imports:list")).context["imports"]) == [job]


def test_the_customer_list_offers_import_to_importers_only(manager_client, staff_client):
    assert (
        reverse("imports:upload") in manager_client.get(reverse("customers:list")).content.decode()
    )
    assert (
        reverse("imports:upload")
        not in staff_client.get(reverse("customers:list")).content.decode()
    )


def test_wrong_methods_are_refused(manager_client, manager):
    job = make_import(manager, csv_bytes([ROW]))
    assert manager_client.get(reverse("imports:run", args=[job.pk])).status_code == 405
    assert manager_client.get(reverse("imports:check", args=[job.pk])).status_code == 405
    assert manager_client.post(reverse("imports:list")).status_code == 405


def test_a_malformed_saved_mapping_link_falls_back_to_suggestions(manager_client, manager):
    job = make_import(manager, csv_bytes([ROW]))
    page = manager_client.get(reverse("imports:mapping", args=[job.pk]), {"saved": "not-an-id"})
    assert page.status_code == 200
    assert page.context["saved"] is None
    assert page.context["form"]["column_0"].initial == "display_name"


@pytest.mark.parametrize(
    ("content", "name", "message"),
    [
        (
            '姓名,手机,备注\n甲,13900139001,"oops\n乙,13900139002,ok\n'.encode(),
            "a.csv",
            "quotation mark",
        ),
        (b"PK\x03\x04 not really a spreadsheet", "a.xlsx", "not a valid .xlsx"),
    ],
)
def test_a_broken_file_is_refused_beside_the_field_never_a_crash(
    manager_client, english, content, name, message
):
    response = upload(manager_client, content, name=name)
    assert response.status_code == 400
    assert message in str(response.context["form"]["file"].errors)
    assert not CustomerImport.objects.exists()


def test_a_nul_byte_in_a_header_is_dropped_on_upload(manager_client):
    response = upload(manager_client, "姓\x00名,手机\n王芳,13900139000\n".encode())
    assert response.status_code == 302
    assert CustomerImport.objects.get().headers == ["姓名", "手机"]


def test_a_revert_refused_by_a_taken_value_is_shown_on_the_import(manager_client, manager):
    job, _outcome = run_import(manager, csv_bytes([ROW]))
    CustomerImport.objects.filter(pk=job.pk).update(error="The import was not reverted: because.")
    page = manager_client.get(job.get_absolute_url())
    assert "The import was not reverted: because." in page.content.decode()
    assert reverse("imports:revert", args=[job.pk]) in page.content.decode()


def test_an_import_past_its_revert_period_cannot_be_reverted(manager_client, manager, settings):
    settings.IMPORT_REVERT_DAYS = 7
    job, _outcome = run_import(manager, csv_bytes([ROW]))
    revert = reverse("imports:revert", args=[job.pk])
    assert revert in manager_client.get(job.get_absolute_url()).text
    CustomerImport.objects.filter(pk=job.pk).update(
        finished_at=timezone.now() - datetime.timedelta(days=8)
    )
    assert revert not in manager_client.get(job.get_absolute_url()).text
    response = manager_client.post(reverse("imports:revert", args=[job.pk]))
    assert response.status_code == 302
    job.refresh_from_db()
    assert job.state == "done"
    assert Customer.objects.count() == 1


def test_an_import_whose_files_were_deleted_still_shows_its_summary(manager_client, manager):
    from customers import imports

    job, _outcome = run_import(manager, csv_bytes([ROW, ["李娜", "12345"] + [""] * 8]))
    CustomerImport.objects.filter(pk=job.pk).update(
        finished_at=timezone.now() - datetime.timedelta(days=400)
    )
    imports.purge_files()
    page = manager_client.get(job.get_absolute_url())
    assert page.status_code == 200
    assert "12345" not in page.text
    assert reverse("imports:report", args=[job.pk]) not in page.text
