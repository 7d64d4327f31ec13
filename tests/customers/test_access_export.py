"""The access and portability export: everything held about one customer, as JSON and PDF."""

import datetime
import decimal
import json
import subprocess

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts import audit
from accounts.audit import Action, AuditEntry
from customers import access_export, consents, merging
from customers.models import (
    ArchivedInteraction,
    ArchivedOrder,
    Customer,
    CustomerImport,
    CustomField,
    ImportedCustomer,
    Interaction,
    Order,
)
from intake.models import Form, FormField, ProposedChange, Submission

pytestmark = pytest.mark.django_db


def export_url(customer, fmt="json"):
    return reverse("customers:data_export", args=[customer.pk, fmt])


def read_json(response):
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json; charset=utf-8"
    return json.loads(b"".join(response.streaming_content).decode("utf-8"))


@pytest.fixture
def everything(customer, make_customer, admin_user, staff):
    """A row in every table that holds something about `customer`."""
    CustomField.objects.create(key="hobby", label="爱好", label_en="Hobby")
    customer.attributes = {"hobby": "品茶"}
    customer.birthday = datetime.date(1990, 5, 17)
    customer.street = "南京西路 1266 号"
    customer.save()
    consent = consents.record_consent(
        customer=customer,
        purpose="marketing_email",
        granted=True,
        source="store",
        wording="我愿意接收邮件资讯",
        wording_version="7",
    )
    withdrawal = consents.record_consent(
        customer=customer, purpose="marketing_email", granted=False, source="web_form"
    )
    form = Form.objects.create(slug="survey-x", title="满意度调查", kind=Form.Kind.SURVEY)
    FormField.objects.create(form=form, key="score", type="rating", label="打分", position=1)
    FormField.objects.create(form=form, key="note", type="text", label="意见", position=2)
    submission = Submission.objects.create(
        form=form,
        customer=customer,
        answers={"score": 4},
        private_answers={"note": "送货很快"},
        state=Submission.State.DONE,
    )
    change = ProposedChange.objects.create(
        submission=submission,
        customer=customer,
        field="company",
        current_value='"上海华东贸易有限公司"',
        proposed_value='"华东新贸易"',
    )
    interaction = Interaction.objects.create(
        customer=customer, kind="call", summary="询问会员积分", created_by=staff
    )
    order = Order.objects.create(
        customer=customer, external_id="SO-8848", amount=decimal.Decimal("299.00")
    )
    now = timezone.now()
    archived_interaction = ArchivedInteraction.objects.create(
        id=Interaction().id,
        customer_id=customer.pk,
        kind="visit",
        channel="store",
        occurred_at=now - datetime.timedelta(days=900),
        summary="门店老顾客回访",
        created_at=now - datetime.timedelta(days=900),
    )
    archived_order = ArchivedOrder.objects.create(
        id=Order().id,
        customer_id=customer.pk,
        source_system="cims",
        external_id="SO-0001-OLD",
        ordered_at=now - datetime.timedelta(days=1000),
        amount=decimal.Decimal("88.00"),
        currency="CNY",
        channel="store",
        created_at=now - datetime.timedelta(days=1000),
    )
    job = CustomerImport.objects.create(user=admin_user, file_name="客户名单.xlsx")
    imported = ImportedCustomer.objects.create(
        customer_import=job, customer_id=customer.pk, row=12, created=False, version=2
    )
    twin = make_customer("张伟 (旧)", owner=customer.owner, team=customer.team)
    merge = merging.merge_customers(
        survivor=customer,
        merged=twin,
        user=admin_user,
        survivor_version=Customer.objects.get(pk=customer.pk).version,
        merged_version=Customer.objects.get(pk=twin.pk).version,
    )
    update = audit.record(Action.CUSTOMER_UPDATE, target=customer, data={"changes": {}})
    other = make_customer("无关客户")
    Interaction.objects.create(customer=other, kind="call", summary="别人的电话")
    return {
        "customer": Customer.objects.get(pk=customer.pk),
        "consents": [consent, withdrawal],
        "submission": submission,
        "change": change,
        "interaction": interaction,
        "order": order,
        "archived_interaction": archived_interaction,
        "archived_order": archived_order,
        "import": (job, imported),
        "merge": merge,
        "twin": twin,
        "audit": update,
    }


def test_json_export_holds_every_related_row(manager_client, everything):
    customer = everything["customer"]
    data = read_json(manager_client.get(export_url(customer)))
    assert (data["format"], data["version"]) == ("cims.customer-data", 1)
    assert data["customer_id"] == str(customer.pk)
    profile = data["profile"]
    # Encrypted values decrypted; search keys and blind indexes left out.
    assert profile["email"] == "zhang.wei@example.com"
    assert profile["phone"] == "+8613800138000"
    assert profile["birthday"] == "1990-05-17"
    assert profile["street"] == "南京西路 1266 号"
    assert "email_index" not in profile and "search_keys" not in profile
    assert data["custom_attributes"] == [{"key": "hobby", "label": "爱好", "value": "品茶"}]
    assert data["current_consents"]["marketing_email"]["state"] == "withdrawn"
    assert data["current_consents"]["sms"] == {"state": "never", "since": None}
    assert {c["id"] for c in data["consents"]} == {str(c.pk) for c in everything["consents"]}
    assert any(c["wording"] == "我愿意接收邮件资讯" for c in data["consents"])
    [submission] = data["submissions"]
    assert submission["id"] == str(everything["submission"].pk)
    answers = {a["question"]: a["answer"] for a in submission["answers"]}
    assert answers == {"打分": 4, "意见": "送货很快"}
    assert submission["submitted_changes"][0]["submitted"] == '"华东新贸易"'
    assert {i["id"] for i in data["interactions"]} == {
        str(everything["interaction"].pk),
        str(everything["archived_interaction"].pk),
    }
    assert "别人的电话" not in json.dumps(data, ensure_ascii=False)
    orders = {o["order_number"]: o for o in data["orders"]}
    assert orders["SO-8848"]["amount"] == "299.00" and not orders["SO-8848"]["archived"]
    assert orders["SO-0001-OLD"]["archived"]
    # The figures count archived orders too, so both orders are in them.
    assert data["analytics"][0]["orders"] == 2
    job, imported = everything["import"]
    assert data["imports"] == [
        {
            "import": str(job.pk),
            "file": "客户名单.xlsx",
            "imported_at": job.created_at.isoformat(),
            "imported_by": "admin",
            "row": 12,
            "created_customer": False,
            "earlier_values_kept_for_revert": False,
        }
    ]
    assert [m["id"] for m in data["merges"]] == [str(everything["merge"].pk)]
    seqs = {entry["seq"] for entry in data["audit_entries"]}
    assert everything["audit"].seq in seqs
    # The merged customer's own history counts: it was this customer too.
    merged_history = AuditEntry.objects.filter(customer_id=everything["twin"].pk)
    assert set(merged_history.values_list("seq", flat=True)) <= seqs
    assert all("ip" not in entry for entry in data["audit_entries"])


def test_json_export_is_streamed_in_batches(manager_client, customer, monkeypatch):
    monkeypatch.setattr(access_export, "BATCH_SIZE", 3)
    Interaction.objects.bulk_create(
        Interaction(customer=customer, kind="call", summary=f"第 {n} 次") for n in range(8)
    )
    response = manager_client.get(export_url(customer))
    assert response.streaming
    data = read_json(response)
    assert sorted(i["summary"] for i in data["interactions"]) == sorted(
        f"第 {n} 次" for n in range(8)
    )


def test_pdf_export_is_readable_with_chinese_text(manager_client, everything, tmp_path, english):
    customer = everything["customer"]
    response = manager_client.get(export_url(customer, "pdf"))

    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    path = tmp_path / "data.pdf"
    path.write_bytes(response.content)
    text = subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True
    ).stdout
    for expected in (
        "Data held about 张伟",
        "zhang.wei@example.com",
        "南京西路 1266 号",
        "我愿意接收邮件资讯",
        "送货很快",
        "询问会员积分",
        "门店老顾客回访",
        "SO-8848",
        "SO-0001-OLD",
        "客户名单.xlsx",
        "Audit trail entries",
    ):
        assert expected in text, expected


def test_pdf_cuts_long_sections_and_says_how_many_more(
    manager_client, customer, monkeypatch, tmp_path, english
):
    monkeypatch.setattr(access_export, "PDF_ROWS_PER_SECTION", 2)
    Interaction.objects.bulk_create(
        Interaction(customer=customer, kind="call", summary=f"call {n}") for n in range(5)
    )
    path = tmp_path / "data.pdf"
    path.write_bytes(manager_client.get(export_url(customer, "pdf")).content)
    text = subprocess.run(
        ["pdftotext", str(path), "-"], capture_output=True, text=True, check=True
    ).stdout
    assert "And 3 more records, in the JSON export." in text


def test_export_is_audited_with_what_was_exported(manager_client, everything, manager):
    customer = everything["customer"]
    read_json(manager_client.get(export_url(customer)))
    entry = AuditEntry.objects.filter(action=Action.DATA_EXPORT).get()
    assert (entry.customer_id, entry.actor_id) == (customer.pk, manager.pk)
    assert entry.data["format"] == "json"
    assert entry.data["sections"]["orders"] == 2
    assert entry.data["sections"]["consents"] == 2


def test_staff_and_viewers_may_not_export_and_outsiders_get_404(
    client, customer, staff, staff2, viewer, auditor
):
    for user, status in ((staff, 403), (viewer, 403), (staff2, 404), (auditor, 404)):
        client.force_login(user)
        assert client.get(export_url(customer)).status_code == status, user
    assert not AuditEntry.objects.filter(action=Action.DATA_EXPORT).exists()


def test_unknown_format_is_not_found(admin_client, customer):
    assert admin_client.get(export_url(customer, "xml")).status_code == 404


def test_export_refuses_post(manager_client, customer):
    assert manager_client.post(export_url(customer)).status_code == 405


def test_manager_of_another_team_gets_404(verified_login, customer, teams):
    from accounts import roles
    from tests.conftest import make_user

    other = make_user("manager2", role=roles.MANAGER, teams=[teams[1]])
    assert verified_login(Client(), other).get(export_url(customer)).status_code == 404


def test_customer_page_offers_the_export_to_managers_only(
    manager_client, staff_client, customer, english
):
    page = customer.get_absolute_url()
    assert export_url(customer) in manager_client.get(page).content.decode()
    assert export_url(customer) not in staff_client.get(page).content.decode()
