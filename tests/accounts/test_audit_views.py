"""Auditors search and export the audit trail; nobody else may."""

import csv
import datetime
import io

import pytest
from django.utils import timezone

from accounts import audit
from accounts.audit import AuditEntry
from accounts.audit_views import PAGE_SIZE

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]

LIST, EXPORT = "/audit/", "/audit/export.csv"


@pytest.fixture
def auditor_client(client, auditor):
    client.force_login(auditor)
    return client


def seqs(response):
    return [entry.seq for entry in response.context["page"].items]


def exported(response):
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    return list(csv.reader(io.StringIO(text)))


def test_auditor_sees_the_newest_entries_first(auditor_client, staff):
    first = audit.record(audit.Action.USER_UPDATE, target=staff, actor=staff)
    second = audit.record(audit.Action.EXPORT, actor=staff, data={"rows": 3})

    response = auditor_client.get(LIST)

    assert response.status_code == 200
    assert seqs(response)[:2] == [second.seq, first.seq]
    assert "User changed" in response.content.decode()


def test_staff_may_not_search_the_trail(staff_client):
    assert staff_client.get(LIST).status_code == 403


def test_staff_may_not_export_the_trail(staff_client):
    assert staff_client.get(EXPORT).status_code == 403


def test_viewer_may_not_see_the_trail(client, viewer):
    client.force_login(viewer)
    assert client.get(LIST).status_code == 403


def test_the_permission_not_the_role_opens_the_trail(client, staff):
    from django.contrib.auth.models import Permission

    staff.user_permissions.add(Permission.objects.get(codename="view_audit_trail"))
    client.force_login(staff)

    assert client.get(LIST).status_code == 200


def test_anonymous_visitor_is_sent_to_sign_in(client):
    response = client.get(LIST)

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_search_needs_get(auditor_client):
    assert auditor_client.post(LIST).status_code == 405


def test_filter_by_user(auditor_client, staff, staff2):
    audit.record(audit.Action.EXPORT, actor=staff)
    mine = audit.record(audit.Action.EXPORT, actor=staff2)

    assert seqs(auditor_client.get(LIST, {"user": "staff2"})) == [mine.seq]


def test_filter_by_action(auditor_client, staff):
    audit.record(audit.Action.EXPORT, actor=staff)
    reveal = audit.record(audit.Action.REVEAL, actor=staff)

    assert seqs(auditor_client.get(LIST, {"action": "customer.reveal"})) == [reveal.seq]


def test_filter_by_customer(auditor_client, customer, make_customer):
    other = make_customer("李娜")
    audit.record(audit.Action.CUSTOMER_UPDATE, target=other)
    about = audit.record(audit.Action.CUSTOMER_UPDATE, target=customer)

    assert seqs(auditor_client.get(LIST, {"customer": str(customer.pk)})) == [about.seq]


def test_filter_by_day(auditor_client):
    entry = audit.record(audit.Action.IMPORT)
    today = timezone.localdate(entry.created_at)
    tomorrow = today + datetime.timedelta(days=1)

    assert entry.seq in seqs(auditor_client.get(LIST, {"since": today, "until": today}))
    assert seqs(auditor_client.get(LIST, {"since": tomorrow})) == []


def test_invalid_filter_shows_no_entries(auditor_client):
    response = auditor_client.get(LIST, {"customer": "not-a-uuid"})

    assert response.status_code == 200
    assert response.context["page"] is None
    assert "Some filters are not valid" in response.content.decode()


def test_pages_follow_each_other_by_number(auditor_client):
    for _number in range(PAGE_SIZE + 5):
        audit.record(audit.Action.EXPORT, data={"filter": "paging"})
    total = AuditEntry.objects.count()

    first = auditor_client.get(LIST)
    cursor = first.context["page"].next_cursor
    second = auditor_client.get(LIST, {"after": cursor, "page": 2})
    back = auditor_client.get(LIST, {"before": second.context["page"].previous_cursor, "page": 1})

    assert seqs(first) == list(range(total, total - PAGE_SIZE, -1))
    assert seqs(second) == list(range(total - PAGE_SIZE, 0, -1))
    assert second.context["page"].next_cursor is None
    assert seqs(back) == seqs(first)


def test_altered_page_link_is_a_bad_request(auditor_client):
    assert auditor_client.get(LIST, {"after": "garbage!"}).status_code == 400


def test_htmx_search_returns_only_the_results(auditor_client):
    response = auditor_client.get(LIST, headers={"HX-Request": "true"})

    content = response.content.decode()
    assert 'id="results"' in content
    assert "<html" not in content


def test_export_is_csv_of_the_matching_entries(auditor_client, staff):
    audit.record(audit.Action.EXPORT, actor=staff, data={"rows": 12})
    audit.record(audit.Action.REVEAL, actor=staff, data={"field": "phone"})

    response = auditor_client.get(EXPORT, {"action": "customer.reveal"})

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    header, *rows = exported(response)
    assert header[:3] == ["seq", "time_utc", "action"]
    assert [row[2] for row in rows] == ["customer.reveal"]
    assert '"field": "phone"' in rows[0][10]


def test_export_cells_cannot_start_a_formula(auditor_client, customer):
    customer.display_name = '=HYPERLINK("http://evil.example")'
    for name in ("=cmd", "+1", "-2", "@SUM(A1)", "\tx", "\rx"):
        customer.display_name = name
        audit.record(audit.Action.CUSTOMER_UPDATE, target=customer)

    header, *rows = exported(auditor_client.get(EXPORT, {"action": "customer.update"}))

    objects = [row[header.index("object")] for row in rows]
    assert objects == ["'=cmd", "'+1", "'-2", "'@SUM(A1)", "'\tx", "'\rx"]
    for row in rows:
        assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for cell in row)


def test_export_is_itself_audited_with_its_filter_and_row_count(auditor_client, auditor):
    for _number in range(3):
        audit.record(audit.Action.IMPORT, data={"rows": 1})

    response = auditor_client.get(EXPORT, {"action": "import"})
    rows = exported(response)[1:]

    entry = AuditEntry.objects.filter(action=audit.Action.AUDIT_EXPORT).get()
    assert entry.actor == auditor
    assert entry.ip == "127.0.0.1"
    assert entry.data == {"filter": {"action": "import"}, "rows": 3, "complete": True}
    assert len(rows) == 3


def test_export_with_an_invalid_filter_is_a_bad_request(auditor_client):
    assert auditor_client.get(EXPORT, {"since": "yesterday"}).status_code == 400
    assert not AuditEntry.objects.filter(action=audit.Action.AUDIT_EXPORT).exists()


def test_customer_history_fragment_shows_field_old_new_who(client, customer, staff):
    from django.template.loader import render_to_string

    audit.record(
        audit.Action.CUSTOMER_UPDATE,
        target=customer,
        actor=staff,
        data={
            "changes": audit.changes(
                {"city": "上海", "phone": "+8613800138000"},
                {"city": "北京", "phone": "+8613900139000"},
            )
        },
    )

    html = render_to_string(
        "accounts/customer_history.html", {"entries": audit.customer_history(customer)}
    )

    assert "上海" in html and "北京" in html and "staff" in html
    assert "138****8000" in html and "139****9000" in html
    assert "13800138000" not in html


def test_customer_history_fragment_without_changes_says_so(customer):
    from django.template.loader import render_to_string

    html = render_to_string("accounts/customer_history.html", {"entries": []})

    assert "No changes recorded yet." in html
