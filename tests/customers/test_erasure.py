"""Erasing a customer: nothing personal left anywhere, figures unchanged, erased for good."""

import base64
import datetime
import decimal
import io
import subprocess
import uuid
from pathlib import Path

import pytest
from django.contrib import admin as django_admin
from django.core.files.base import ContentFile
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, connections
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone

from accounts import audit
from accounts.audit_sealing import AuditSubjectKey
from accounts.models import AuditEntry
from accounts.signals import database_restored
from customers import erasure
from customers.erasure import ERASED_NAME, Ledger, LedgerTampered
from customers.models import (
    ArchivedInteraction,
    Consent,
    Customer,
    CustomerImport,
    Erasure,
    ImportedCustomer,
    Interaction,
    Merge,
    Order,
)
from intake.models import Form, Submission

CANARIES = {
    "name": "Canaryname Qx7",
    "family": "Canaryfamily",
    "email": "canary.qx7@example.com",
    "phone_digits": "13912347788",
    "street": "Canary Street 77",
    "company": "Canary Trading Qx7",
    "notes": "canary-notes-qx7",
    "attribute": "canary-hobby-qx7",
    "interaction": "canary-interaction-qx7",
    "interaction_detail": "canary-detail-qx7",
    "archived": "canary-archived-qx7",
    "order_number": "CANARY-ORDER-QX7",
    "answer": "canary-answer-qx7",
    "audit": "canary-audit-qx7",
    "consent": "canary-consent-wording-qx7",
    "import_row": "canary-import-qx7",
    "merge": "canary-merge-qx7",
    "export": "canary-export-qx7",
    "ip": "203.0.113.77",
}
PHONE = "+86" + CANARIES["phone_digits"]


@pytest.fixture(autouse=True)
def _ledger_and_checkpoints_in_temporary_files(settings, tmp_path):
    settings.ERASURE_LEDGER_PATH = tmp_path / "erasures" / "ledger.jsonl"
    settings.AUDIT_CHECKPOINT_DIR = tmp_path / "checkpoints"


def canary_customer(owner, team, custom_fields):
    customer = Customer.objects.create(
        display_name=CANARIES["name"],
        family_name=CANARIES["family"],
        given_name="Qx7",
        email=CANARIES["email"],
        phone=PHONE,
        street=CANARIES["street"],
        birthday=datetime.date(1980, 5, 17),
        company=CANARIES["company"],
        job_title="Canary buyer",
        province="浙江省",
        city="杭州",
        district="西湖区",
        postcode="310000",
        notes=CANARIES["notes"],
        attributes={"hobby": CANARIES["attribute"]},
        external_id="canary-ext-qx7",
        status="active",
        source="store",
        tags=["vip"],
        owner=owner,
        team=team,
    )
    Interaction.objects.create(
        customer=customer,
        kind="call",
        summary=CANARIES["interaction"],
        details={"note": CANARIES["interaction_detail"]},
    )
    ArchivedInteraction.objects.create(
        id=uuid.uuid4(),
        customer_id=customer.pk,
        kind="visit",
        channel="store",
        occurred_at=timezone.now() - datetime.timedelta(days=900),
        summary=CANARIES["archived"],
        created_at=timezone.now() - datetime.timedelta(days=900),
    )
    Order.objects.create(
        customer=customer,
        external_id=CANARIES["order_number"],
        amount=decimal.Decimal("1288.50"),
        channel="store",
    )
    Order.objects.create(customer=customer, external_id="o-2", amount=decimal.Decimal("99.00"))
    Consent.objects.create(
        customer=customer, purpose="marketing_email", granted=True, wording=CANARIES["consent"]
    )
    form = Form.objects.create(slug="canary", title="Canary")
    Submission.objects.create(
        form=form,
        customer=customer,
        answers={"rating": 5},
        private_answers={"message": CANARIES["answer"], "email": CANARIES["email"]},
        ip_address=CANARIES["ip"],
        state=Submission.State.DONE,
    )
    audit.record(
        audit.Action.CUSTOMER_UPDATE,
        target=customer,
        actor=owner,
        data={"changes": {"notes": ["", CANARIES["audit"]]}},
    )
    # The customer sending a public form: nobody signed in, the address is theirs.
    public = RequestFactory().post("/f/canary/", REMOTE_ADDR=CANARIES["ip"])
    audit.record(
        audit.Action.CUSTOMER_UPDATE, target=customer, request=public, data={"changes": {}}
    )
    # An edit through Django's admin: its history and the audit entry name the customer.
    request = RequestFactory().post("/")
    request.user = owner
    django_admin.site._registry[Customer].log_change(request, customer, "Changed notes.")
    job = CustomerImport.objects.create(
        user=owner,
        file=ContentFile(f"name,phone\n{CANARIES['import_row']},{PHONE}\n".encode(), "c.csv"),
        file_name="c.csv",
        file_format="csv",
        sample=[[CANARIES["import_row"], PHONE]],
        preview={"rows": [[CANARIES["import_row"]]]},
    )
    ImportedCustomer.objects.create(
        customer_import=job,
        customer_id=customer.pk,
        row=1,
        created=False,
        version=1,
        previous={"display_name": CANARIES["import_row"]},
    )
    Merge.objects.create(
        survivor=customer,
        merged_id=uuid.uuid4(),
        merged_name="Someone else",
        survivor_version=1,
        survivor_before={"display_name": CANARIES["merge"]},
    )
    from reports.models import GeneratedFile

    generated = GeneratedFile.objects.create(
        owner=owner,
        title="Customers",
        format="csv",
        spec={"kind": "table", "rows": [[CANARIES["export"]]]},
        status=GeneratedFile.Status.DONE,
    )
    generated.file.save("customers.csv", ContentFile(CANARIES["export"].encode()))
    return Customer.objects.get(pk=customer.pk)


def clear_text_hits(needles):
    """[(table, column, needle)] for every needle found in any text, JSON, array or bytea
    column of any table of the database."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT c.table_name, c.column_name, c.data_type
            FROM information_schema.columns c
            JOIN information_schema.tables t
              ON t.table_schema = c.table_schema AND t.table_name = c.table_name
            WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE'
              AND c.data_type IN ('text', 'character varying', 'character', 'json', 'jsonb',
                                  'bytea', 'ARRAY', 'inet', 'USER-DEFINED')
            """
        )
        columns = cursor.fetchall()
        hits = []
        for table, column, data_type in columns:
            for needle in needles:
                if isinstance(needle, bytes):
                    if data_type != "bytea":
                        continue
                    condition = f'position(%s::bytea in "{column}") > 0'
                elif data_type == "bytea":
                    condition = f"position(convert_to(%s, 'UTF8') in \"{column}\") > 0"
                else:
                    condition = f"\"{column}\"::text ILIKE '%%' || %s || '%%'"
                cursor.execute(
                    f'SELECT EXISTS (SELECT 1 FROM "{table}" WHERE {condition})', [needle]
                )
                if cursor.fetchone()[0]:
                    hits.append((table, column, needle))
        return hits


def media_hits(media_root, needles):
    found = []
    for path in Path(media_root).rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            found += [(str(path), n) for n in needles if n.encode() in content]
    return found


def text_canaries():
    return [value for key, value in CANARIES.items()] + [PHONE]


def index_needles(customer):
    """The blind indexes of the email and phone, as bytes and as they would look in text."""
    needles = []
    for value in (customer.email_index, customer.phone_index):
        raw = bytes(value)
        needles += [raw, raw.hex(), base64.b64encode(raw).decode()]
    return needles


def figures():
    """Every stored figure the dashboard and reports read, and revenue straight from orders."""
    from django.db.models import Sum

    from reports.models.summaries import SUMMARY_MODELS

    tables = {
        model.__name__: sorted(tuple(str(v) for v in row) for row in model.objects.values_list())
        for model in SUMMARY_MODELS
    }
    from reports.models import CustomerMetrics

    metrics = sorted(
        (str(m.customer_id), m.orders, str(m.revenue), m.segment)
        for m in CustomerMetrics.objects.all()
    )
    revenue = Order.objects.aggregate(total=Sum("amount"))["total"]
    return tables, metrics, revenue


def test_no_personal_value_remains_anywhere_after_erasure(
    staff, teams, custom_fields, settings, django_capture_on_commit_callbacks
):
    customer = canary_customer(staff, teams[0], custom_fields)
    needles = text_canaries() + index_needles(customer)
    before = {needle for _t, _c, needle in clear_text_hits(needles)}
    # The scan finds what is there: the clear columns' canaries, and the blind indexes.
    assert {CANARIES["notes"], CANARIES["interaction"], CANARIES["import_row"]} <= before
    assert ("django_admin_log", "object_repr", CANARIES["name"]) in clear_text_hits(needles)
    assert ("intake_submission", "ip_address", CANARIES["ip"]) in clear_text_hits(needles)
    # Entries about the customer keep even the sender's address sealed.
    assert not AuditEntry.objects.filter(ip=CANARIES["ip"]).exists()
    opened = AuditEntry.objects.for_customer(customer).filter(action="customer.update")
    assert CANARIES["ip"] in {entry.ip for entry in opened}
    assert bytes(customer.email_index) in before
    assert media_hits(settings.MEDIA_ROOT, [CANARIES["export"], CANARIES["import_row"]])

    with django_capture_on_commit_callbacks(execute=True):
        erasure.erase_customer(customer.pk, reason="request", user=staff)

    assert clear_text_hits(needles) == []
    assert media_hits(settings.MEDIA_ROOT, text_canaries()) == []
    ledger_text = Path(settings.ERASURE_LEDGER_PATH).read_text()
    assert not [c for c in text_canaries() if c in ledger_text]


def test_erased_customer_is_a_tombstone_with_the_figures_columns_kept(staff, teams):
    customer = Customer.objects.create(
        display_name="李娜", email="li.na@example.com", phone="+8613700137000",
        province="广东省", status="active", source="expo", tags=["vip"], owner=staff, team=teams[0],
    )  # fmt: skip
    erasure.erase_customer(customer.pk, reason="request")

    tomb = Customer.objects.get(pk=customer.pk)
    assert tomb.display_name == ERASED_NAME
    assert (tomb.email, tomb.phone, tomb.email_index, tomb.phone_index) == ("", "", None, None)
    assert (tomb.province, tomb.status, tomb.source, tomb.tags) == (
        "广东省",
        "active",
        "expo",
        ["vip"],
    )
    assert (tomb.owner, tomb.team, tomb.created_at) == (staff, teams[0], customer.created_at)
    assert tomb.version == customer.version + 1
    assert not Customer.objects.search("李娜").filter(pk=customer.pk).exists()
    assert Customer.objects.with_email("li.na@example.com").count() == 0


def test_dashboard_figures_and_revenue_are_identical_after_erasure(staff, teams, custom_fields):
    from reports.metrics import refresh_metrics

    customer = canary_customer(staff, teams[0], custom_fields)
    refresh_metrics()
    before = figures()
    assert before[2] == decimal.Decimal("1387.50")

    erasure.erase_customer(customer.pk, reason="request")

    assert figures() == before
    refresh_metrics()
    assert figures() == before


def test_audit_trail_still_verifies_and_the_customers_details_are_shredded(staff, teams):
    customer = Customer.objects.create(display_name="王芳", owner=staff, team=teams[0])
    audit.record(
        audit.Action.CUSTOMER_UPDATE,
        target=customer,
        actor=staff,
        data={"changes": {"notes": ["", "王芳的秘密"]}},
    )
    assert audit.write_checkpoint() is not None
    entry = AuditEntry.objects.for_customer(customer).get(action="customer.update")
    assert entry.data["changes"]["notes"][1] == "王芳的秘密"
    assert entry.object_repr == "王芳"

    erasure.erase_customer(customer.pk, reason="request", user=staff)

    assert audit.verify_trail().entries == AuditEntry.objects.count()
    # The next checkpoint re-checks the entry the last one signed: sealed, its key now gone.
    assert audit.write_checkpoint() is not None
    assert audit.verify_trail().checkpoints == 2
    shredded = AuditEntry.objects.for_customer(customer).get(action="customer.update")
    assert (shredded.data, shredded.object_repr, shredded.erased) == ({}, "", True)
    erased = AuditEntry.objects.for_customer(customer).get(action="customer.erase")
    assert erased.data["reason"] == "request"
    assert "王芳" not in erased.details_json() and erased.object_repr == ""
    assert not AuditSubjectKey.objects.filter(customer_id=customer.pk).exists()


def test_erasure_is_recorded_in_the_table_and_the_ledger(staff, customer, settings):
    erasure.erase_customer(customer.pk, reason="objection", user=staff)
    erasure.erase_customer(customer.pk, reason="request", user=staff)  # again: no new record

    record = Erasure.objects.get(customer_id=customer.pk)
    assert (record.reason, record.erased_by_username) == ("objection", "staff")
    (line,) = Ledger().entries()
    assert line["customer_id"] == str(customer.pk) and line["reason"] == "objection"


def test_a_changed_ledger_line_is_noticed(customer, make_customer, settings, english):
    erasure.erase_customer(customer.pk, reason="request")
    erasure.erase_customer(make_customer("赵六").pk, reason="request")
    path = Path(settings.ERASURE_LEDGER_PATH)
    lines = path.read_text().splitlines()

    path.write_text(lines[0].replace('"request"', '"other"') + "\n" + lines[1] + "\n")
    with pytest.raises(LedgerTampered, match="Line 1"):
        Ledger().entries()
    path.write_text(lines[1] + "\n")
    with pytest.raises(LedgerTampered, match="Line 1"):
        Ledger().entries()


def test_erase_customer_command(customer, staff):
    call_command("erase_customer", str(customer.pk), "--reason", "request", "--as", "staff")

    assert Customer.objects.get(pk=customer.pk).display_name == ERASED_NAME
    assert Erasure.objects.get(customer_id=customer.pk).erased_by_id == staff.pk


def test_erase_customer_command_refuses_an_unknown_id(db, english):
    with pytest.raises(CommandError, match="No customer"):
        call_command("erase_customer", str(uuid.uuid4()))
    with pytest.raises(CommandError, match="No customer"):
        call_command("erase_customer", "not-a-uuid")


def test_reapply_command_erases_again_a_customer_whose_data_came_back(customer):
    erasure.erase_customer(customer.pk, reason="request")
    # As a restore of an older backup would: the row with its data, no Erasure row.
    Erasure.objects.all().delete()
    Customer.objects.filter(pk=customer.pk).update(display_name="张伟", notes="back again")

    call_command("reapply_erasures")

    back = Customer.objects.get(pk=customer.pk)
    assert (back.display_name, back.notes) == (ERASED_NAME, "")
    assert Erasure.objects.filter(customer_id=customer.pk).exists()
    again = AuditEntry.objects.for_customer(customer).filter(action="customer.erase").first()
    assert again.data["reapplied"] is True


def test_reapply_refuses_a_tampered_ledger_and_changes_nothing(customer, settings, english):
    erasure.erase_customer(customer.pk, reason="request")
    path = Path(settings.ERASURE_LEDGER_PATH)
    path.write_text(path.read_text().replace('"request"', '"other"'))
    Customer.objects.filter(pk=customer.pk).update(display_name="张伟")

    with pytest.raises(CommandError, match="was changed"):
        call_command("reapply_erasures")

    assert Customer.objects.get(pk=customer.pk).display_name == "张伟"


@pytest.fixture
def scratch_database(transactional_db):
    """A second database, a pg_dump of the test database restored into it, as alias
    "restored"; dropped afterwards."""
    source = connection.settings_dict
    name = f"{source['NAME']}_restored"
    env_args = ["-h", source["HOST"] or "127.0.0.1", "-p", str(source["PORT"] or 5432)]
    env_args += ["-U", source["USER"]]

    def restore_now():
        with connection.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')
            cursor.execute(f'CREATE DATABASE "{name}"')
        dump = subprocess.run(
            ["pg_dump", *env_args, "-Fc", source["NAME"]], check=True, capture_output=True
        ).stdout
        subprocess.run(["pg_restore", *env_args, "--no-owner", "-d", name], input=dump, check=True)
        connections.settings["restored"] = {**source, "NAME": name}
        # The test case refuses to open connections to aliases it was not told of when it
        # started; connecting directly is what the restore command's own connection does.
        connections["restored"].connect()
        return "restored"

    yield restore_now
    if "restored" in connections.settings:
        connections["restored"].close()
        del connections.settings["restored"]
        del connections["restored"]
    with connection.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')


def test_erased_customer_stays_erased_after_restore(staff, teams, scratch_database):
    customer = Customer.objects.create(
        display_name="陈静", email="chen.jing@example.com", phone="+8613600136000",
        notes="陈静的备注", owner=staff, team=teams[0],
    )  # fmt: skip
    audit.record(audit.Action.CUSTOMER_UPDATE, target=customer, data={"changes": {}})
    # The backup is made before the erasure.
    alias = scratch_database()
    erasure.erase_customer(customer.pk, reason="request", user=staff)
    restored = Customer.objects.using(alias).get(pk=customer.pk)
    assert restored.display_name == "陈静"  # the backup has the customer as they were

    database_restored.send(sender=None, using=alias)

    restored = Customer.objects.using(alias).get(pk=customer.pk)
    assert (restored.display_name, restored.notes, restored.email_index) == (ERASED_NAME, "", None)
    assert Erasure.objects.using(alias).filter(customer_id=customer.pk).exists()
    assert not AuditSubjectKey.objects.using(alias).filter(customer_id=customer.pk).exists()
    # Nothing of the restored database was touched in the live one meanwhile.
    assert Customer.objects.get(pk=customer.pk).display_name == ERASED_NAME


# --- The page --------------------------------------------------------------------------------


def erase_url(customer):
    return reverse("customers:erase", args=[customer.pk])


def test_manager_erases_a_customer_after_typing_the_name(
    manager_client, customer, english, settings
):
    page = manager_client.get(erase_url(customer))
    assert page.status_code == 200 and "Type the customer" in page.content.decode()

    response = manager_client.post(
        erase_url(customer), {"reason": "request", "confirm_name": " 张伟 "}
    )

    assert response.status_code == 302 and response["Location"] == customer.get_absolute_url()
    assert Customer.objects.get(pk=customer.pk).display_name == ERASED_NAME
    detail = manager_client.get(customer.get_absolute_url()).content.decode()
    assert "personal data was erased" in detail
    assert erase_url(customer) not in detail


def test_a_wrong_name_erases_nothing(manager_client, customer, english):
    response = manager_client.post(erase_url(customer), {"reason": "request", "confirm_name": "张"})

    assert response.status_code == 400
    assert "does not match" in response.content.decode()
    assert not Erasure.objects.exists()
    assert Customer.objects.get(pk=customer.pk).display_name == "张伟"


def test_retention_is_not_a_reason_a_person_chooses(manager_client, customer):
    response = manager_client.post(
        erase_url(customer), {"reason": "retention", "confirm_name": "张伟"}
    )

    assert response.status_code == 400 and not Erasure.objects.exists()


def test_erase_page_refuses_other_methods(manager_client, customer):
    assert manager_client.put(erase_url(customer)).status_code == 405


@pytest.mark.parametrize(
    ("persona", "status"), [("staff2", 404), ("auditor", 404), ("viewer", 403), ("staff", 403)]
)
def test_who_may_not_erase_is_refused(persona, status, customer, client, request, verified_login):
    verified_login(client, request.getfixturevalue(persona))

    response = client.post(erase_url(customer), {"reason": "request", "confirm_name": "张伟"})

    assert response.status_code == status
    assert not Erasure.objects.exists()


def test_the_erase_button_shows_only_to_those_who_may(
    client, customer, manager, staff, verified_login
):
    verified_login(client, staff)
    assert erase_url(customer) not in client.get(customer.get_absolute_url()).content.decode()
    verified_login(client, manager)
    assert erase_url(customer) in client.get(customer.get_absolute_url()).content.decode()


def test_rotate_keys_rewraps_the_audit_keys_so_old_field_keys_can_be_retired(
    settings, make_customer, english
):
    from cims import crypto

    first, second = crypto.new_key(), crypto.new_key()
    settings.FIELD_ENCRYPTION_KEYS = f"1:{first}"
    settings.BLIND_INDEX_KEY = crypto.new_key()
    customer = make_customer("周杰")
    audit.record(audit.Action.CUSTOMER_UPDATE, target=customer, data={"changes": {"x": [1, 2]}})
    settings.FIELD_ENCRYPTION_KEYS = f"1:{first}, 2:{second}"
    with pytest.raises(CommandError):
        call_command("rotate_keys", "--check", stdout=io.StringIO())

    output = io.StringIO()
    call_command("rotate_keys", stdout=output)

    assert "1 audit keys re-encrypted" in output.getvalue()
    call_command("rotate_keys", "--check", stdout=io.StringIO())
    settings.FIELD_ENCRYPTION_KEYS = f"2:{second}"  # the old key retired
    entry = AuditEntry.objects.for_customer(customer).get()
    assert entry.data == {"changes": {"x": [1, 2]}} and entry.object_repr == "周杰"
    crypto.reset()


def test_erased_customers_are_never_proposed_as_duplicates(make_customer):
    from customers import duplicates
    from customers.models import DuplicateCandidate

    twins = [make_customer("刘洋", city="成都", company="成都茶业") for _ in range(2)]
    duplicates.refresh_candidates()
    assert DuplicateCandidate.objects.count() == 1

    for twin in twins:
        erasure.erase_customer(twin.pk, reason="request")
    duplicates.refresh_candidates()

    assert DuplicateCandidate.objects.count() == 0


def test_reapply_appends_erasures_missing_from_the_ledger(customer, settings):
    erasure.erase_customer(customer.pk, reason="request")
    Path(settings.ERASURE_LEDGER_PATH).unlink()  # a ledger lost, or started after this erasure

    erasure.reapply_erasures()

    assert [e["customer_id"] for e in Ledger().entries()] == [str(customer.pk)]


def test_audit_page_and_export_show_the_entries_of_an_erased_customer_without_details(
    admin_client, customer, english
):
    audit.record(
        audit.Action.CUSTOMER_UPDATE, target=customer, data={"changes": {"notes": ["", "秘密"]}}
    )
    url = reverse("audit:list") + f"?customer={customer.pk}"
    assert "秘密" in admin_client.get(url).content.decode()

    erasure.erase_customer(customer.pk, reason="request")

    page = admin_client.get(url).content.decode()
    assert "Details erased with the customer" in page and "Customer erased" in page
    assert "秘密" not in page and "张伟" not in page
    export = b"".join(admin_client.get(reverse("audit:export")).streaming_content).decode()
    assert str(customer.pk) in export and "秘密" not in export and "张伟" not in export


def test_two_transactions_making_a_customers_audit_key_at_once_share_one(transactional_db):
    import threading

    from django.db import transaction

    customer = Customer.objects.create(display_name="孙丽")
    first_recorded, second_started = threading.Event(), threading.Event()
    errors = []

    def first():
        try:
            with transaction.atomic():
                audit.record(audit.Action.REVEAL, target=customer, data={"field": "phone"})
                first_recorded.set()
                # Holds its uncommitted key while the second transaction tries to make one.
                second_started.wait(5)
                threading.Event().wait(0.3)
        except Exception as error:  # noqa: BLE001 (reported by the assertion below)
            errors.append(error)
        finally:
            connection.close()

    def second():
        try:
            first_recorded.wait(5)
            second_started.set()
            audit.record(audit.Action.REVEAL, target=customer, data={"field": "email"})
        except Exception as error:  # noqa: BLE001
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)

    assert errors == []
    assert AuditSubjectKey.objects.filter(customer_id=customer.pk).count() == 1
    opened = AuditEntry.objects.for_customer(customer).order_by("seq")
    assert [e.data for e in opened] == [{"field": "phone"}, {"field": "email"}]


def test_erasure_deletes_earlier_customer_files_but_keeps_analyses(
    staff, customer, settings, django_capture_on_commit_callbacks
):
    from reports.models import GeneratedFile

    def made(kind):
        generated = GeneratedFile.objects.create(
            owner=staff, title=kind, format="csv", spec={"kind": kind}, status="done"
        )
        generated.file.save(f"{kind}.csv", ContentFile(b"x"))
        return generated

    listing, report, analysis = made("customers"), made("report"), made("analysis")
    stored = Path(settings.MEDIA_ROOT) / listing.file.name

    with django_capture_on_commit_callbacks(execute=True):
        erasure.erase_customer(customer.pk, reason="request")

    assert list(GeneratedFile.objects.all()) == [analysis]
    assert not stored.exists()
    assert not GeneratedFile.objects.filter(pk__in=[listing.pk, report.pk]).exists()


def test_review_queue_codes_consents_and_duplicate_pairs_go_with_the_customer(
    customer, make_customer
):
    from customers.models import DuplicateCandidate
    from intake.models import ProposedChange, VerificationCode

    other = make_customer("张卫")
    form = Form.objects.create(slug="update", title="Update")
    theirs = Submission.objects.create(form=form, customer=customer)
    VerificationCode.objects.create(
        submission=theirs, channel="email", code_hash="x", expires_at=timezone.now()
    )
    ProposedChange.objects.create(
        submission=theirs, customer=customer, field="company", proposed_value="新公司"
    )
    # Someone else submitted this customer's email: the value is theirs too.
    someone = Submission.objects.create(form=form, customer=other)
    ProposedChange.objects.create(
        submission=someone,
        customer=other,
        field="email",
        proposed_value="zhang.wei@example.com",
        conflicting_customer=customer,
    )
    Consent.objects.create(customer=customer, purpose="sms", granted=True)
    a, b = sorted([customer, other], key=lambda c: str(c.pk))
    DuplicateCandidate.objects.create(customer_a=a, customer_b=b, score=80)

    erasure.erase_customer(customer.pk, reason="request")

    assert not ProposedChange.objects.exists()
    assert not VerificationCode.objects.exists()
    assert not Consent.objects.exists() and not DuplicateCandidate.objects.exists()
    theirs.refresh_from_db()
    assert (theirs.customer_id, theirs.private_answers) == (None, {})
    assert Submission.objects.get(pk=someone.pk).customer == other


# --- Archived customers ----------------------------------------------------------------------


def archived_canary_customer(staff, teams, custom_fields, other):
    """The canary customer with what only archiving keeps apart (proposed changes, a value
    submitted by someone else found to be theirs, a duplicate pair), then archived."""
    from customers import archiving
    from customers.models import DuplicateCandidate
    from intake.models import ProposedChange

    customer = canary_customer(staff, teams[0], custom_fields)
    form = Form.objects.get(slug="canary")
    theirs = Submission.objects.get(customer=customer)
    ProposedChange.objects.create(
        submission=theirs, customer=customer, field="company", proposed_value=CANARIES["company"]
    )
    someone = Submission.objects.create(form=form, customer=other)
    ProposedChange.objects.create(
        submission=someone,
        customer=other,
        field="email",
        proposed_value=CANARIES["email"],
        conflicting_customer=customer,
    )
    a, b = sorted([customer, other], key=lambda c: str(c.pk))
    DuplicateCandidate.objects.create(customer_a=a, customer_b=b, score=80)
    Order.objects.filter(customer=customer).update(ordered_at=timezone.now())
    archiving.archive_customers([customer.pk])
    return customer


def test_no_personal_value_remains_anywhere_after_erasing_an_archived_customer(
    staff, teams, custom_fields, make_customer, settings, django_capture_on_commit_callbacks
):
    from customers.models import ArchivedCustomer

    customer = archived_canary_customer(staff, teams, custom_fields, make_customer("张卫"))
    needles = text_canaries() + index_needles(customer)
    before = clear_text_hits(needles)
    # The archive holds the customer now: their row, snapshots and history.
    assert ("customers_archivedcustomer", "notes", CANARIES["notes"]) in before
    assert ("customers_archivedcustomer", "related", CANARIES["consent"]) in before
    assert ("customers_archivedinteraction", "summary", CANARIES["interaction"]) in before
    assert not Customer.objects.filter(pk=customer.pk).exists()

    with django_capture_on_commit_callbacks(execute=True):
        erasure.erase_customer(customer.pk, reason="request", user=staff)

    assert clear_text_hits(needles) == []
    assert media_hits(settings.MEDIA_ROOT, text_canaries()) == []
    # Still archived, as a tombstone; the value found to be theirs is gone with them.
    tomb = ArchivedCustomer.objects.get(pk=customer.pk)
    assert tomb.display_name == ERASED_NAME
    from intake.models import ProposedChange

    assert not ProposedChange.objects.exists()
    assert not Customer.objects.filter(pk=customer.pk).exists()
    assert AuditEntry.objects.for_customer(customer).filter(action="customer.erase").exists()


def test_erased_archived_customer_is_a_tombstone_that_keeps_figures_and_shares(
    staff, staff2, teams, make_customer
):
    from accounts.permissions import share
    from customers import archiving
    from customers.models import ArchivedCustomer, ArchivedOrder
    from reports.metrics import refresh_metrics

    customer = make_customer(
        "李娜", email="li.na@example.com", phone="+8613700137000", province="广东省",
        status="active", source="expo", tags=["vip"], owner=staff, team=teams[0],
    )  # fmt: skip
    Order.objects.create(customer=customer, external_id="LN-1", amount=decimal.Decimal("50.00"))
    Consent.objects.create(customer=customer, purpose="sms", granted=True)
    share(customer, staff2, "view")
    refresh_metrics()
    archiving.archive_customers([customer.pk])
    archived = ArchivedCustomer.objects.get(pk=customer.pk)
    assert archived.consented_purposes == ["sms"] and archived.related["consents"]

    erasure.erase_customer(customer.pk, reason="request")

    tomb = ArchivedCustomer.objects.get(pk=customer.pk)
    assert (tomb.display_name, tomb.email, tomb.phone, tomb.email_index) == (
        ERASED_NAME, "", "", None,
    )  # fmt: skip
    assert (tomb.province, tomb.status, tomb.source, tomb.tags, tomb.owner, tomb.team) == (
        "广东省", "active", "expo", ["vip"], staff, teams[0],
    )  # fmt: skip
    assert (tomb.archived_at, tomb.created_at) == (archived.archived_at, archived.created_at)
    assert tomb.consented_purposes == [] and tomb.version == archived.version + 1
    assert set(tomb.related) == {"user_shares", "team_shares", "metrics"}
    assert tomb.related["metrics"] == archived.related["metrics"]
    assert tomb.share_keys == archived.share_keys != []
    order = ArchivedOrder.objects.get(customer_id=customer.pk)
    assert (order.amount, order.external_id) == (decimal.Decimal("50.00"), str(order.id))
    assert not ArchivedCustomer.objects.search("李娜").exists()
    assert tomb.erasure == Erasure.objects.get(customer_id=customer.pk)


def test_restoring_an_erased_archived_customer_brings_back_a_tombstone(
    staff, staff2, teams, make_customer
):
    from accounts.permissions import share
    from customers import archiving
    from customers.models import ArchivedCustomer

    customer = make_customer("陈静", email="chen.jing@example.com", owner=staff, team=teams[0])
    Order.objects.create(customer=customer, external_id="CJ-1", amount=decimal.Decimal("20.00"))
    Consent.objects.create(customer=customer, purpose="sms", granted=True)
    share(customer, staff2, "view")
    archiving.archive_customers([customer.pk])
    erasure.erase_customer(customer.pk, reason="request")

    restored = archiving.restore_customer(ArchivedCustomer.objects.get(pk=customer.pk), user=staff)

    back = Customer.objects.get(pk=customer.pk)
    assert (back.display_name, back.email, back.consented_purposes) == (ERASED_NAME, "", [])
    assert back.erasure is not None and restored.orders == 1
    assert Order.objects.get(customer=back).amount == decimal.Decimal("20.00")
    assert not Consent.objects.filter(customer=back).exists()
    assert Customer.objects.visible_to(staff2).filter(pk=back.pk).exists()
    assert not ArchivedCustomer.objects.filter(pk=customer.pk).exists()


def test_a_duplicate_pair_kept_in_the_archive_does_not_come_back_after_an_erasure(
    make_customer,
):
    from customers import archiving
    from customers.models import ArchivedCustomer, DuplicateCandidate

    first, second = make_customer("刘洋"), make_customer("刘阳")
    a, b = sorted([first, second], key=lambda c: str(c.pk))
    DuplicateCandidate.objects.create(customer_a=a, customer_b=b, score=80)
    archiving.archive_customers([first.pk])
    archiving.archive_customers([second.pk])
    # The first comes back while the second is archived: the pair waits in the second's row.
    archiving.restore_customer(ArchivedCustomer.objects.get(pk=first.pk), user=None)
    assert ArchivedCustomer.objects.get(pk=second.pk).related["duplicate_candidates"]

    erasure.erase_customer(first.pk, reason="request")
    archiving.restore_customer(ArchivedCustomer.objects.get(pk=second.pk), user=None)

    assert not DuplicateCandidate.objects.exists()


def test_reapply_erases_again_an_archived_customer_whose_data_came_back(customer):
    from customers import archiving
    from customers.models import ArchivedCustomer

    archiving.archive_customers([customer.pk])
    erasure.erase_customer(customer.pk, reason="request")
    # As a restore of a backup made while the customer was archived, before the erasure.
    Erasure.objects.all().delete()
    ArchivedCustomer.objects.filter(pk=customer.pk).update(
        display_name="张伟", notes="back again", related={"consents": [{"purpose": "sms"}]}
    )

    assert erasure.reapply_erasures() == [str(customer.pk)]

    tomb = ArchivedCustomer.objects.get(pk=customer.pk)
    assert (tomb.display_name, tomb.notes, tomb.related) == (ERASED_NAME, "", {})
    assert Erasure.objects.filter(customer_id=customer.pk).exists()
    assert erasure.reapply_erasures() == []


def test_reapply_passes_over_a_customer_in_neither_table(customer):
    erasure.erase_customer(customer.pk, reason="request")
    Customer.objects.filter(pk=customer.pk).delete()  # the tombstone deleted since
    Erasure.objects.all().delete()

    assert erasure.reapply_erasures() == []

    assert Erasure.objects.filter(customer_id=customer.pk).exists()
    assert not Customer.objects.filter(pk=customer.pk).exists()


def test_archived_customer_stays_erased_after_restoring_a_backup(staff, teams, scratch_database):
    from customers import archiving
    from customers.models import ArchivedCustomer

    customer = Customer.objects.create(
        display_name="周杰", email="zhou.jie@example.com", notes="周杰的备注",
        owner=staff, team=teams[0],
    )  # fmt: skip
    archiving.archive_customers([customer.pk])
    # The backup is made while the customer is archived, before the erasure.
    alias = scratch_database()
    erasure.erase_customer(customer.pk, reason="request", user=staff)
    assert ArchivedCustomer.objects.using(alias).get(pk=customer.pk).display_name == "周杰"

    database_restored.send(sender=None, using=alias)

    restored = ArchivedCustomer.objects.using(alias).get(pk=customer.pk)
    assert (restored.display_name, restored.notes, restored.email_index) == (ERASED_NAME, "", None)
    assert Erasure.objects.using(alias).filter(customer_id=customer.pk).exists()
    assert not AuditSubjectKey.objects.using(alias).filter(customer_id=customer.pk).exists()


def test_erase_customer_command_erases_an_archived_customer(customer, staff):
    from customers import archiving
    from customers.models import ArchivedCustomer

    archiving.archive_customers([customer.pk])

    call_command("erase_customer", str(customer.pk), "--reason", "request", "--as", "staff")

    assert ArchivedCustomer.objects.get(pk=customer.pk).display_name == ERASED_NAME


@pytest.fixture
def archived(customer):
    from customers import archiving
    from customers.models import ArchivedCustomer

    archiving.archive_customers([customer.pk])
    return ArchivedCustomer.objects.get(pk=customer.pk)


def archived_erase_url(archived):
    return reverse("customers:archived_erase", args=[archived.pk])


def test_manager_erases_an_archived_customer_who_stays_in_the_archive(
    manager_client, archived, english
):
    from customers.models import ArchivedCustomer

    detail = manager_client.get(archived.get_absolute_url()).content.decode()
    assert archived_erase_url(archived) in detail and "Erase personal data" in detail
    assert "Type the customer" in manager_client.get(archived_erase_url(archived)).content.decode()

    response = manager_client.post(
        archived_erase_url(archived), {"reason": "request", "confirm_name": "张伟"}
    )

    assert response.status_code == 302 and response["Location"] == archived.get_absolute_url()
    assert ArchivedCustomer.objects.get(pk=archived.pk).display_name == ERASED_NAME
    detail = manager_client.get(archived.get_absolute_url()).content.decode()
    assert "personal data was erased" in detail
    assert archived_erase_url(archived) not in detail
    again = manager_client.get(archived_erase_url(archived))
    assert again.status_code == 302 and Erasure.objects.count() == 1


def test_a_wrong_name_erases_no_archived_customer(manager_client, archived, english):
    response = manager_client.post(
        archived_erase_url(archived), {"reason": "request", "confirm_name": "张"}
    )

    assert response.status_code == 400 and "does not match" in response.content.decode()
    assert not Erasure.objects.exists()


def test_archived_erase_page_refuses_other_methods(manager_client, archived):
    assert manager_client.put(archived_erase_url(archived)).status_code == 405


@pytest.mark.parametrize(
    ("persona", "status"), [("staff2", 404), ("auditor", 404), ("viewer", 403), ("staff", 403)]
)
def test_who_may_not_erase_an_archived_customer_is_refused(
    persona, status, archived, client, request, verified_login
):
    verified_login(client, request.getfixturevalue(persona))

    response = client.post(
        archived_erase_url(archived), {"reason": "request", "confirm_name": "张伟"}
    )

    assert response.status_code == status
    assert not Erasure.objects.exists()


def test_the_archived_erase_button_shows_only_to_those_who_may(
    client, archived, staff, verified_login
):
    verified_login(client, staff)

    page = client.get(archived.get_absolute_url()).content.decode()

    assert archived_erase_url(archived) not in page
