"""The review queue: staff accept or reject submitted values that differ from the record."""

import re

import pytest
from django.contrib.auth.models import Group, Permission
from django.urls import reverse

from accounts.audit import Action, AuditEntry
from customers.models import Customer
from intake import services
from intake.answer_forms import AnswerForm
from intake.models import FormField, ProposedChange, Submission
from tests.conftest import make_user

Type = FormField.Type
REVIEW_URL = reverse("intake:review")


@pytest.fixture
def update_form(built_form):
    return built_form(
        {"key": "name", "type": Type.TEXT, "label": "姓名", "target": "customer:display_name"},
        {"key": "email", "type": Type.EMAIL, "label": "邮箱", "target": "customer:email"},
        {"key": "phone", "type": Type.PHONE, "label": "手机", "target": "customer:phone"},
        {"key": "company", "type": Type.TEXT, "label": "公司", "target": "customer:company"},
        slug="update-details",
        title="更新资料",
        title_en="Update your details",
    )


def submitted(form, **answers):
    """Apply a submission with these answers; returns it (in review when values differ)."""
    answer_form = AnswerForm(form, data=answers)
    assert answer_form.is_valid(), answer_form.errors
    readable, private = answer_form.answers()
    submission = Submission.objects.create(
        form=form, state="received", answers=readable, private_answers=private
    )
    services.apply_submission(submission)
    submission.refresh_from_db()
    return submission


@pytest.fixture
def in_review(update_form, customer):
    """A submission proposing a new company and a new phone for staff's customer 张伟."""
    submission = submitted(
        update_form,
        email="zhang.wei@example.com",
        company="杭州新公司",
        phone="13912345678",
    )
    assert submission.state == Submission.State.REVIEW
    return submission


def change_of(submission, field):
    return ProposedChange.objects.get(submission=submission, field=field)


def decide_change(client, change, decision, version=None):
    return client.post(
        reverse("intake:review_change", args=[change.pk]),
        {"decision": decision, "version": version or change.customer.version},
    )


def decide_all(client, submission, decision, version=None):
    return client.post(
        reverse("intake:review_submission", args=[submission.pk]),
        {"decision": decision, "version": version or submission.customer.version},
    )


# The list --------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_reviewer_sees_the_changes_of_a_submission_with_record_and_submitted_values(
    staff_client, in_review, english
):
    response = staff_client.get(REVIEW_URL)
    text = response.content.decode()
    assert response.status_code == 200
    assert "张伟" in text and "Update your details" in text
    assert "上海华东贸易有限公司" in text and "杭州新公司" in text
    # Staff may view sensitive data: the phone is shown in clear, and that is recorded.
    assert "138 0013 8000" in text and "139 1234 5678" in text
    reveal = AuditEntry.objects.filter(action=Action.REVEAL).get()
    assert reveal.data == {"fields": ["phone"], "page": "review"}
    assert "company" in text.lower()
    assert "Accept all" in text


@pytest.mark.django_db
def test_sensitive_values_are_masked_for_reviewers_who_may_not_read_them(
    client, in_review, teams, english
):
    role = Group.objects.create(name="Reviewer without sensitive data")
    role.permissions.set(
        Permission.objects.filter(
            codename__in=[
                "view_customer",
                "change_customer",
                "view_team_customers",
                "change_team_customers",
                "review_submission",
            ]
        )
    )
    reviewer = make_user("reviewer", teams=[teams[0]])
    reviewer.groups.add(role)
    client.force_login(reviewer)
    text = client.get(REVIEW_URL).content.decode()
    assert "138****8000" in text and "139****5678" in text
    assert "13800138000" not in text and "13912345678" not in text
    assert "杭州新公司" in text
    assert not AuditEntry.objects.filter(action=Action.REVEAL).exists()


@pytest.mark.django_db
def test_staff_of_another_team_sees_nothing_of_it(client, staff2, in_review, english):
    client.force_login(staff2)
    text = client.get(REVIEW_URL).content.decode()
    assert "张伟" not in text and "杭州新公司" not in text
    assert "Nothing waits for review." in text


@pytest.mark.django_db
def test_manager_of_the_team_sees_it(manager_client, in_review):
    assert "杭州新公司" in manager_client.get(REVIEW_URL).content.decode()


@pytest.mark.django_db
def test_viewer_and_auditor_may_not_open_the_queue(client, viewer, auditor):
    for user in (viewer, auditor):
        client.force_login(user)
        assert client.get(REVIEW_URL).status_code == 403


@pytest.mark.django_db
def test_queue_is_newest_first_in_keyset_pages(
    staff_client, update_form, staff, teams, make_customer, settings, django_assert_max_num_queries
):
    settings.INTAKE_REVIEW_PAGE_SIZE = 3
    for number in range(7):
        make_customer(
            f"客户{number}",
            email=f"c{number}@example.com",
            company="旧",
            owner=staff,
            team=teams[0],
        )
        submitted(update_form, email=f"c{number}@example.com", company=f"新{number}")
    with django_assert_max_num_queries(20) as queries:
        first = staff_client.get(REVIEW_URL)
    # Pages are found by key: nothing counts the queue or skips rows with OFFSET.
    sql = " ".join(q["sql"] for q in queries.captured_queries).upper()
    assert "OFFSET" not in sql and "COUNT(" not in sql
    names = re.findall(r"客户(\d)</a></h2>", first.content.decode())
    assert names == ["6", "5", "4"]
    after = re.search(r'href="\?after=([^"]+)"', first.content.decode()).group(1)
    second = staff_client.get(REVIEW_URL, {"after": after})
    assert re.findall(r"客户(\d)</a></h2>", second.content.decode()) == ["3", "2", "1"]
    assert staff_client.get(REVIEW_URL, {"after": "garbage"}).status_code == 400


@pytest.mark.django_db
def test_queue_can_show_one_customers_changes(
    staff_client, in_review, update_form, make_customer, staff
):
    make_customer("另一位", email="other@example.com", company="甲", owner=staff)
    submitted(update_form, email="other@example.com", company="乙")
    text = staff_client.get(REVIEW_URL, {"customer": in_review.customer_id}).content.decode()
    assert "杭州新公司" in text and "另一位" not in text


# Deciding --------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_accepting_a_change_writes_it_with_the_version_check_and_audits_it(
    staff_client, staff, in_review, customer
):
    response = decide_change(staff_client, change_of(in_review, "company"), "accept")
    assert response.status_code == 302
    assert response["Location"] == REVIEW_URL
    customer.refresh_from_db()
    assert customer.company == "杭州新公司"
    assert (customer.version, customer.updated_by) == (2, staff)
    change = change_of(in_review, "company")
    assert (change.decision, change.decided_by) == ("accepted", staff)
    entry = AuditEntry.objects.filter(action=Action.CUSTOMER_UPDATE, actor=staff).get()
    assert entry.data["changes"] == {"company": ["上海华东贸易有限公司", "杭州新公司"]}
    assert entry.data["submission"] == str(in_review.pk)
    # The phone still waits: the submission is not done yet.
    assert Submission.objects.get(pk=in_review.pk).state == Submission.State.REVIEW


@pytest.mark.django_db
def test_deciding_the_last_change_finishes_the_submission(staff_client, in_review, customer):
    decide_change(staff_client, change_of(in_review, "company"), "reject")
    customer.refresh_from_db()
    decide_change(staff_client, change_of(in_review, "phone"), "accept", customer.version)
    customer.refresh_from_db()
    assert customer.company == "上海华东贸易有限公司"
    assert customer.phone == "+8613912345678"
    assert Customer.objects.with_phone("13912345678").get() == customer
    assert change_of(in_review, "company").decision == "rejected"
    assert Submission.objects.get(pk=in_review.pk).state == Submission.State.DONE


@pytest.mark.django_db
def test_accept_all_and_reject_all(staff_client, in_review, update_form, customer):
    decide_all(staff_client, in_review, "accept")
    customer.refresh_from_db()
    assert (customer.company, customer.phone) == ("杭州新公司", "+8613912345678")
    assert Submission.objects.get(pk=in_review.pk).state == Submission.State.DONE
    (entry,) = AuditEntry.objects.filter(action=Action.CUSTOMER_UPDATE, actor__isnull=False)
    assert set(entry.data["changes"]) == {"company", "phone"}

    later = submitted(update_form, email="zhang.wei@example.com", company="第三家公司")
    decide_all(staff_client, later, "reject")
    customer.refresh_from_db()
    assert customer.company == "杭州新公司"
    assert Submission.objects.get(pk=later.pk).state == Submission.State.DONE


@pytest.mark.django_db
def test_a_customer_changed_since_the_page_was_opened_is_not_overwritten(
    staff_client, in_review, customer, english
):
    opened_at = customer.version
    Customer.objects.filter(pk=customer.pk).update(version=opened_at + 1, company="别人改的")
    response = decide_change(staff_client, change_of(in_review, "company"), "accept", opened_at)
    assert response.status_code == 302
    customer.refresh_from_db()
    assert customer.company == "别人改的"
    assert change_of(in_review, "company").decision == ""
    page = staff_client.get(response["Location"]).content.decode()
    assert "was changed after you opened this page" in page


@pytest.mark.django_db
def test_a_conflicting_phone_cannot_be_accepted_until_merged(
    staff_client, update_form, customer, make_customer, english
):
    make_customer("另一个人", phone="+8613700137000")
    submission = submitted(update_form, email="zhang.wei@example.com", phone="13700137000")
    change = change_of(submission, "phone")
    assert change.conflicting_customer is not None
    text = staff_client.get(REVIEW_URL).content.decode()
    # Staff may not see the other customer: told that there is one, not who.
    assert "Another customer already has this value" in text
    assert "另一个人" not in text
    response = decide_change(staff_client, change, "accept")
    page = staff_client.get(response["Location"]).content.decode()
    assert "Another customer has this email or mobile number." in page
    customer.refresh_from_db()
    assert customer.phone == "+8613800138000"
    assert change_of(submission, "phone").decision == ""
    decide_change(staff_client, change, "reject")
    assert Submission.objects.get(pk=submission.pk).state == Submission.State.DONE


@pytest.mark.django_db
def test_a_reviewer_who_may_see_the_other_customer_gets_a_link_to_them(
    admin_client, update_form, customer, make_customer, english
):
    other = make_customer("另一个人", phone="+8613700137000")
    submitted(update_form, email="zhang.wei@example.com", phone="13700137000")
    text = admin_client.get(REVIEW_URL).content.decode()
    assert f'<a href="{other.get_absolute_url()}">另一个人</a>' in text


@pytest.mark.django_db
def test_a_change_decided_twice_is_decided_once(staff_client, in_review, customer, english):
    change = change_of(in_review, "company")
    decide_change(staff_client, change, "reject")
    customer.refresh_from_db()
    response = decide_change(staff_client, change, "accept", customer.version)
    page = staff_client.get(response["Location"]).content.decode()
    assert "This was already decided." in page
    customer.refresh_from_db()
    assert customer.company == "上海华东贸易有限公司"


@pytest.mark.django_db
def test_staff_of_another_team_cannot_decide_it(client, staff2, in_review, customer):
    client.force_login(staff2)
    assert decide_change(client, change_of(in_review, "company"), "accept").status_code == 404
    assert decide_all(client, in_review, "accept").status_code == 404
    customer.refresh_from_db()
    assert customer.company == "上海华东贸易有限公司"
    assert change_of(in_review, "company").decision == ""


@pytest.mark.django_db
def test_viewer_and_auditor_cannot_decide(client, viewer, auditor, in_review):
    for user in (viewer, auditor):
        client.force_login(user)
        assert decide_change(client, change_of(in_review, "company"), "accept").status_code == 403
        assert decide_all(client, in_review, "reject").status_code == 403
    assert change_of(in_review, "company").decision == ""


@pytest.mark.django_db
def test_deciding_is_post_only_and_needs_a_decision_and_version(staff_client, in_review):
    change = change_of(in_review, "company")
    url = reverse("intake:review_change", args=[change.pk])
    assert staff_client.get(url).status_code == 405
    assert (
        staff_client.get(reverse("intake:review_submission", args=[in_review.pk])).status_code
        == 405
    )
    assert staff_client.post(url, {"decision": "maybe", "version": 1}).status_code == 400
    response = staff_client.post(url, {"decision": "accept", "version": "x"})
    assert response.status_code == 302
    assert change_of(in_review, "company").decision == ""


@pytest.mark.django_db
def test_a_submission_no_longer_in_review_is_not_found(staff_client, in_review):
    Submission.objects.filter(pk=in_review.pk).update(state=Submission.State.DONE)
    assert decide_all(staff_client, in_review, "accept").status_code == 404


# Around the application -------------------------------------------------------------------


@pytest.mark.django_db
def test_customer_page_says_how_many_changes_wait_and_links_to_them(
    staff_client, in_review, customer, english, django_assert_max_num_queries
):
    text = staff_client.get(customer.get_absolute_url()).content.decode()
    assert "2 submitted changes waiting for review" in text
    assert f"{REVIEW_URL}?customer={customer.pk}" in text


@pytest.mark.django_db
def test_customer_page_of_a_viewer_has_no_note(client, viewer, in_review, customer):
    client.force_login(viewer)
    text = client.get(customer.get_absolute_url()).content.decode()
    assert "waiting for review" not in text


@pytest.mark.django_db
def test_main_navigation_links_to_the_queue_for_reviewers_only(client, staff, viewer, english):
    client.force_login(staff)
    assert f'href="{REVIEW_URL}"' in client.get(reverse("home"), follow=True).content.decode()
    client.force_login(viewer)
    assert f'href="{REVIEW_URL}"' not in client.get(reverse("home"), follow=True).content.decode()


@pytest.mark.django_db
def test_rejecting_a_change_is_recorded_without_its_value(staff_client, staff, in_review, customer):
    from accounts.models import AuditEntry

    decide_change(staff_client, change_of(in_review, "company"), "reject")
    entry = AuditEntry.objects.get(action="customer.changes_rejected")
    assert entry.actor == staff and entry.customer_id == customer.pk
    assert entry.data == {
        "submission": str(in_review.pk),
        "form": in_review.form.slug,
        "fields": ["company"],
    }
