"""Applying submissions to customers: matching, creating, filling, proposing, consents, races."""

import datetime
import json
import threading
import time

import pytest
from django.db import connection, transaction
from django.utils import timezone, translation

from accounts.audit import Action, AuditEntry
from customers.models import Consent, Customer, CustomField, Interaction
from intake import services
from intake.answer_forms import AnswerForm
from intake.models import Form, FormField, ProposedChange, Submission
from tests.conftest import make_user
from tests.intake.conftest import CONTACT_FIELDS

Type = FormField.Type


def received(form, answers, **extra):
    """A received submission with these answers, as the public form would store it."""
    answer_form = AnswerForm(form, data=answers)
    assert answer_form.is_valid(), answer_form.errors
    readable, private = answer_form.answers()
    return Submission.objects.create(
        form=form,
        state=Submission.State.RECEIVED,
        answers=readable,
        private_answers=private,
        **extra,
    )


def apply(form, answers, **extra):
    submission = received(form, answers, **extra)
    services.apply_submission(submission)
    return Submission.objects.select_related("customer").get(pk=submission.pk)


@pytest.fixture
def profile_form(built_form, custom_fields):
    """Contact questions plus a company, a birthday, a level and interests (custom fields)."""
    return built_form(
        *CONTACT_FIELDS,
        {"key": "company", "type": Type.TEXT, "label": "公司", "target": "customer:company"},
        {"key": "birthday", "type": Type.DATE, "label": "生日", "target": "customer:birthday"},
        {
            "key": "level",
            "type": Type.CHOICE,
            "label": "等级",
            "choices": [{"value": "gold", "label": "金卡"}, {"value": "silver", "label": "银卡"}],
            "target": "attribute:level",
        },
        {
            "key": "interests",
            "type": Type.MULTI_CHOICE,
            "label": "兴趣",
            "choices": [{"value": v, "label": v} for v in ("wine", "golf", "tea", "cards")],
            "target": "attribute:interests",
        },
        {"key": "remark", "type": Type.LONG_TEXT, "label": "留言"},
        slug="profile",
        title="会员资料",
        title_en="Member profile",
    )


def audit_entries(customer, action):
    return list(AuditEntry.objects.for_customer(customer).filter(action=action))


# Creating ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_unknown_contact_creates_a_customer_with_the_forms_source_owner_and_team(
    profile_form, teams, staff
):
    Form.objects.filter(pk=profile_form.pk).update(owner=staff, team=teams[1], source="survey")
    profile_form.refresh_from_db()
    submission = apply(
        profile_form,
        {
            "name": "王芳",
            "email": " Wang.Fang@Example.COM ",
            "phone": "139 0013 9000",
            "company": "杭州茶业",
            "birthday": "1990-05-04",
            "level": "gold",
            "interests": ["tea", "golf"],
            "remark": "kept as an answer only",
        },
        event="Spring fair",
    )
    customer = submission.customer
    assert submission.state == Submission.State.DONE
    assert submission.processed_at is not None
    assert (customer.display_name, customer.email, customer.phone) == (
        "王芳",
        "wang.fang@example.com",
        "+8613900139000",
    )
    assert customer.company == "杭州茶业"
    assert customer.birthday == datetime.date(1990, 5, 4)
    assert customer.attributes == {"level": "gold", "interests": ["golf", "tea"]}
    assert (customer.source, customer.owner, customer.team) == ("survey", staff, teams[1])
    assert "remark" not in json.dumps(customer.attributes)
    # Saved through the model: blind indexes work, search columns are filled.
    assert Customer.objects.with_phone("13900139000").get() == customer
    assert customer.name_pinyin
    (created,) = audit_entries(customer, Action.CUSTOMER_CREATE)
    assert created.actor_id is None
    assert created.data["form"] == "profile"
    assert created.data["submission"] == str(submission.pk)
    assert created.data["changes"]["company"] == [None, "杭州茶业"]
    # The answers stay on the submission as they arrived.
    assert submission.answer("remark") == "kept as an answer only"
    (visit,) = Interaction.objects.filter(customer=customer)
    assert (visit.kind, visit.channel, visit.summary) == ("form_submission", "website", "会员资料")
    assert visit.details == {
        "submission": str(submission.pk),
        "form": "profile",
        "event": "Spring fair",
    }


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("channel", "source"), [("store", "store"), ("expo", "expo"), ("wechat", "web_form")]
)
def test_source_of_a_new_customer_follows_the_channel(contact_form, channel, source):
    submission = apply(contact_form, {"name": "李雷", "phone": "13700137000"}, channel=channel)
    assert submission.customer.source == source


@pytest.mark.django_db
def test_staff_entry_makes_them_owner_and_puts_the_customer_in_their_first_team(
    contact_form, staff, teams
):
    submission = apply(
        contact_form, {"name": "韩梅梅", "phone": "13600136000"}, entered_by=staff, channel="store"
    )
    customer = submission.customer
    assert (customer.owner, customer.team, customer.created_by) == (staff, teams[0], staff)
    assert Interaction.objects.get(customer=customer).created_by == staff


@pytest.mark.django_db
def test_display_name_comes_from_name_parts_or_else_the_contact(built_form):
    parts = built_form(
        {"key": "family", "type": Type.TEXT, "target": "customer:family_name"},
        {"key": "given", "type": Type.TEXT, "target": "customer:given_name"},
        {"key": "email", "type": Type.EMAIL, "target": "customer:email"},
        {"key": "phone", "type": Type.PHONE, "target": "customer:phone"},
    )
    named = apply(parts, {"family": "Smith", "given": "John", "email": "john@example.com"})
    assert named.customer.display_name == "John Smith"
    chinese = apply(parts, {"family": "张", "given": "三", "phone": "13500135000"})
    assert chinese.customer.display_name == "张三"
    by_email = apply(parts, {"email": "nameless@example.com"})
    assert by_email.customer.display_name == "nameless@example.com"
    by_phone = apply(parts, {"phone": "13400134000"})
    assert by_phone.customer.display_name == "134 0013 4000"


@pytest.mark.django_db
def test_anonymous_survey_answers_are_kept_without_making_a_customer(built_form):
    survey = built_form({"key": "score", "type": Type.NPS, "label": "推荐"}, kind=Form.Kind.SURVEY)
    submission = apply(survey, {"score": "9"})
    assert submission.customer is None
    assert submission.state == Submission.State.DONE
    assert submission.answers == {"score": 9}
    assert not Customer.objects.exists()


# Matching --------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_verified_match_fills_empty_fields_and_proposes_differing_ones(profile_form, make_customer):
    Form.objects.filter(pk=profile_form.pk).update(verify=Form.Verify.EMAIL)
    customer = make_customer(
        "王芳", email="wang.fang@example.com", company="旧公司", attributes={"level": "silver"}
    )
    submission = apply(
        profile_form,
        {
            "name": "王芳",
            "email": "WANG.FANG@example.com",
            "phone": "13900139000",
            "company": "新公司",
            "level": "gold",
            "interests": ["wine"],
        },
        verified_at=timezone.now(),
    )
    customer.refresh_from_db()
    assert submission.customer == customer
    assert submission.state == Submission.State.REVIEW
    # Empty on record: filled directly.
    assert customer.phone == "+8613900139000"
    assert customer.attributes == {"level": "silver", "interests": ["wine"]}
    # Differing: waiting for review, the record unchanged.
    assert customer.company == "旧公司"
    proposals = {c.field: c for c in ProposedChange.objects.filter(submission=submission)}
    assert set(proposals) == {"company", "attribute:level"}
    assert json.loads(proposals["company"].current_value) == "旧公司"
    assert json.loads(proposals["company"].proposed_value) == "新公司"
    assert json.loads(proposals["attribute:level"].proposed_value) == "gold"
    assert customer.version == 2
    (update,) = audit_entries(customer, Action.CUSTOMER_UPDATE)
    assert update.actor_id is None and update.data["form"] == "profile"
    assert set(update.data["changes"]) == {"phone", "attributes.interests"}
    assert update.data["changes"]["phone"][0] in (None, "")  # sensitive: masked, not in clear
    assert "masked" in update.data["changes"]["phone"][1]


@pytest.mark.django_db
def test_unverified_match_changes_nothing_on_record_without_review(built_form, make_customer):
    # Anyone can type a known customer's email into a public form.
    form = built_form(
        *CONTACT_FIELDS,
        {"key": "notes", "type": Type.LONG_TEXT, "target": "customer:notes"},
        {"key": "hobby", "type": Type.TEXT, "target": "attribute:hobby"},
    )
    CustomField.objects.create(key="hobby", label="Hobby", type=CustomField.Type.TEXT)
    customer = make_customer("王芳", email="wang.fang@example.com", notes="Prefers calls.")
    submission = apply(
        form,
        {
            "name": "王芳",
            "email": "wang.fang@example.com",
            "phone": "13900139000",
            "notes": "Call me on the new number.",
            "hobby": "golf",
        },
    )
    customer.refresh_from_db()
    assert submission.customer == customer
    assert submission.state == Submission.State.REVIEW
    assert (customer.phone, customer.notes, customer.attributes) == ("", "Prefers calls.", {})
    assert customer.version == 1
    assert not audit_entries(customer, Action.CUSTOMER_UPDATE)
    proposals = {
        c.field: json.loads(c.proposed_value)
        for c in ProposedChange.objects.filter(submission=submission)
    }
    assert proposals == {
        "phone": "+8613900139000",
        "notes": "Prefers calls.\n\nCall me on the new number.",
        "attribute:hobby": "golf",
    }


@pytest.mark.django_db
def test_a_verified_phone_does_not_speak_for_the_customer_of_an_email(built_form, make_customer):
    form = built_form(*CONTACT_FIELDS, verify=Form.Verify.PHONE)
    customer = make_customer("王芳", email="wang.fang@example.com")
    submission = apply(
        form,
        {"name": "王芳", "email": "wang.fang@example.com", "phone": "13900139000"},
        verified_at=timezone.now(),
    )
    customer.refresh_from_db()
    assert submission.customer == customer
    # The proven number is the sender's, not yet the customer's: it waits for review.
    assert customer.phone == ""
    (change,) = ProposedChange.objects.filter(submission=submission)
    assert change.field == "phone"


@pytest.mark.django_db
def test_staff_entry_fills_their_own_customer_but_not_one_they_cannot_change(
    contact_form, make_customer, staff, staff2, teams
):
    own = make_customer("自己的", email="own@example.com", owner=staff, team=teams[0])
    other = make_customer("别人的", email="other@example.com", owner=staff2, team=teams[1])
    apply(
        contact_form,
        {"name": "自己的", "email": "own@example.com", "phone": "13900139000"},
        entered_by=staff,
    )
    submission = apply(
        contact_form,
        {"name": "别人的", "email": "other@example.com", "phone": "13700137000"},
        entered_by=staff,
    )
    own.refresh_from_db()
    other.refresh_from_db()
    assert own.phone == "+8613900139000"
    assert other.phone == ""
    assert submission.customer == other
    assert submission.state == Submission.State.REVIEW


@pytest.mark.django_db
def test_match_by_phone_typed_in_any_format(contact_form, make_customer):
    customer = make_customer("赵敏", phone="+8613800138000")
    submission = apply(contact_form, {"name": "赵敏", "phone": "+86 138-0013-8000"})
    assert submission.customer == customer
    assert Customer.objects.count() == 1


@pytest.mark.django_db
def test_equal_values_are_no_change(contact_form, make_customer):
    customer = make_customer("赵敏", phone="+8613800138000", email="zhao.min@example.com")
    submission = apply(
        contact_form, {"name": "赵敏", "phone": "13800138000", "email": "Zhao.Min@example.com"}
    )
    customer.refresh_from_db()
    assert submission.state == Submission.State.DONE
    assert customer.version == 1
    assert not ProposedChange.objects.exists()
    assert not audit_entries(customer, Action.CUSTOMER_UPDATE)
    assert Interaction.objects.filter(customer=customer).count() == 1


@pytest.mark.django_db
def test_email_and_phone_of_two_customers_the_email_wins_and_the_phone_is_a_conflict(
    contact_form, make_customer
):
    by_email = make_customer("邮箱客户", email="same@example.com")
    by_phone = make_customer("手机客户", phone="+8613800138000")
    submission = apply(
        contact_form, {"name": "邮箱客户", "email": "same@example.com", "phone": "13800138000"}
    )
    assert submission.customer == by_email
    assert submission.state == Submission.State.REVIEW
    (conflict,) = ProposedChange.objects.filter(submission=submission)
    assert (conflict.field, conflict.conflicting_customer) == ("phone", by_phone)
    assert conflict.customer == by_email
    by_email.refresh_from_db()
    assert by_email.phone == ""


@pytest.mark.django_db
def test_a_verified_phone_wins_over_an_unverified_email(built_form, make_customer):
    form = built_form(*CONTACT_FIELDS, verify=Form.Verify.PHONE)
    by_email = make_customer("邮箱客户", email="same@example.com")
    by_phone = make_customer("手机客户", phone="+8613800138000")
    submission = apply(
        form,
        {"name": "手机客户", "email": "same@example.com", "phone": "13800138000"},
        verified_at=timezone.now(),
    )
    assert submission.customer == by_phone
    (conflict,) = ProposedChange.objects.filter(submission=submission)
    assert (conflict.field, conflict.conflicting_customer) == ("email", by_email)


@pytest.mark.django_db
def test_matching_searches_all_customers_not_one_users(contact_form, staff2, make_customer, teams):
    hidden = make_customer("别人的客户", email="theirs@example.com", owner=staff2, team=teams[1])
    submission = apply(contact_form, {"name": "别人的客户", "email": "theirs@example.com"})
    assert submission.customer == hidden


@pytest.mark.django_db
def test_customer_chosen_by_staff_is_used_whatever_the_contact(contact_form, customer, staff):
    submission = apply(
        contact_form,
        {"name": "张伟", "email": "another@example.com"},
        customer=customer,
        entered_by=staff,
    )
    assert submission.customer == customer
    (change,) = ProposedChange.objects.filter(submission=submission)
    assert change.field == "email"
    assert Customer.objects.count() == 1


@pytest.mark.django_db
def test_the_same_value_waiting_for_review_is_not_proposed_twice(contact_form, customer):
    answers = {"name": "张伟", "email": "zhang.wei@example.com", "phone": "13912345678"}
    first = apply(contact_form, answers)
    second = apply(contact_form, answers)
    assert ProposedChange.objects.filter(customer=customer).count() == 1
    assert (first.state, second.state) == (Submission.State.REVIEW, Submission.State.DONE)


@pytest.mark.django_db
def test_invalid_values_are_left_out_and_the_rest_applied(built_form, custom_fields):
    form = built_form(
        {"key": "name", "type": Type.TEXT, "target": "customer:display_name"},
        {"key": "score", "type": Type.TEXT, "target": "attribute:score"},  # a number field
        {"key": "gone", "type": Type.TEXT, "target": "attribute:no_such_field"},
        {"key": "sex", "type": Type.TEXT, "target": "customer:gender"},
    )
    submission = apply(form, {"name": "钱七", "score": "many", "gone": "x", "sex": "unknown"})
    customer = submission.customer
    assert (customer.display_name, customer.attributes, customer.gender) == ("钱七", {}, "")


@pytest.mark.django_db
def test_notes_are_added_below_the_ones_on_record(built_form, make_customer, staff):
    form = built_form(
        {"key": "phone", "type": Type.PHONE, "target": "customer:phone"},
        {"key": "notes", "type": Type.LONG_TEXT, "target": "customer:notes"},
    )
    customer = make_customer("孙八", phone="+8613300133000", notes="Prefers calls.", owner=staff)
    submission = apply(
        form, {"phone": "13300133000", "notes": "Asked about wine."}, entered_by=staff
    )
    customer.refresh_from_db()
    assert customer.notes == "Prefers calls.\n\nAsked about wine."
    assert submission.state == Submission.State.DONE


# Consents --------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("language", "wording"),
    [
        ("en", "I agree to receive news about products and events."),
        ("zh-hans", "我同意接收产品和活动信息。"),
    ],
)
def test_consent_is_recorded_with_the_wording_shown(contact_form, language, wording):
    FormField.objects.filter(form=contact_form, key="marketing").update(wording_version=3)
    with translation.override(language):
        submission = apply(
            contact_form,
            {"name": "周九", "phone": "13200132000", "marketing": "on"},
            language=language,
            channel="store",
        )
    (consent,) = Consent.objects.filter(customer=submission.customer)
    assert (consent.purpose, consent.granted) == ("marketing_email", True)
    assert (consent.wording, consent.wording_version) == (wording, "3")
    assert consent.source == "store"
    assert consent.recorded_at == submission.created_at


@pytest.mark.django_db
def test_an_unticked_consent_is_recorded_as_declined(contact_form):
    submission = apply(contact_form, {"name": "吴十", "phone": "13100131000"})
    (consent,) = Consent.objects.filter(customer=submission.customer)
    assert consent.granted is False


@pytest.mark.django_db
def test_an_unverified_sender_can_withdraw_a_known_customers_consent_but_not_grant_it(
    contact_form, make_customer
):
    customer = make_customer("吴十", email="wu@example.com")
    apply(contact_form, {"name": "吴十", "email": "wu@example.com", "marketing": "on"})
    assert not Consent.objects.filter(customer=customer).exists()
    apply(contact_form, {"name": "吴十", "email": "wu@example.com"})
    (consent,) = Consent.objects.filter(customer=customer)
    assert consent.granted is False


@pytest.mark.django_db
def test_a_verified_sender_grants_consent_for_their_own_record(built_form, make_customer):
    form = built_form(*CONTACT_FIELDS, verify=Form.Verify.EMAIL)
    customer = make_customer("吴十", email="wu@example.com")
    apply(
        form,
        {"name": "吴十", "email": "wu@example.com", "marketing": "on"},
        verified_at=timezone.now(),
    )
    (consent,) = Consent.objects.filter(customer=customer)
    assert consent.granted is True


# Idempotence and races ---------------------------------------------------------------------


@pytest.mark.django_db
def test_applying_twice_changes_nothing_the_second_time(contact_form, make_customer):
    make_customer("郑一", email="zheng@example.com", phone="+8613000130000")
    submission = received(
        contact_form, {"name": "郑一新", "email": "zheng@example.com", "marketing": "on"}
    )
    services.apply_submission(submission)
    counts = (
        ProposedChange.objects.count(),
        Consent.objects.count(),
        Interaction.objects.count(),
        AuditEntry.objects.count(),
    )
    assert services.apply_submission(submission) is None
    submission.state = Submission.State.RECEIVED  # a stale copy, as a duplicated task has
    assert services.apply_submission(submission) is None
    assert counts == (
        ProposedChange.objects.count(),
        Consent.objects.count(),
        Interaction.objects.count(),
        AuditEntry.objects.count(),
    )


@pytest.mark.django_db
def test_pending_submissions_are_not_applied(contact_form):
    submission = received(contact_form, {"name": "冯二", "phone": "13800000000"})
    Submission.objects.filter(pk=submission.pk).update(state=Submission.State.PENDING)
    assert services.apply_submission(submission) is None
    assert not Customer.objects.exists()


def _waiting_on_a_lock(pid):
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_locks WHERE pid = %s AND NOT granted", [pid])
        return cursor.fetchone()[0] > 0


def test_two_submissions_creating_the_same_email_at_once_make_one_customer(
    transactional_db, built_form
):
    # Verified, so that the second may fill the first one's customer.
    form = built_form(*CONTACT_FIELDS, verify=Form.Verify.EMAIL)
    first = received(
        form, {"name": "陈先生", "email": "chen@example.com"}, verified_at=timezone.now()
    )
    second = received(
        form,
        {"name": "陈先生", "email": "chen@example.com", "phone": "13811112222"},
        verified_at=timezone.now(),
    )
    backend = {}
    errors = []

    def apply_second():
        from django.db import connection as thread_connection

        try:
            with thread_connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                backend["pid"] = cursor.fetchone()[0]
            services.apply_submission(second)
        except Exception as error:  # reported to the test below
            errors.append(error)
        finally:
            thread_connection.close()

    # The first creates its customer and keeps its transaction open while the second, which
    # cannot see that customer yet, tries to create one with the same email.
    with transaction.atomic():
        services.apply_submission(first)
        thread = threading.Thread(target=apply_second)
        thread.start()
        deadline = time.monotonic() + 10
        while not (backend.get("pid") and _waiting_on_a_lock(backend["pid"])):
            assert time.monotonic() < deadline, "the second never waited for the first"
            time.sleep(0.02)
    thread.join(10)
    assert not errors
    customer = Customer.objects.with_email("chen@example.com").get()
    assert Customer.objects.count() == 1
    second.refresh_from_db()
    assert second.customer == customer
    assert second.state == Submission.State.DONE
    customer.refresh_from_db()
    assert customer.phone == "+8613811112222"  # filled by the second, applied as a match


# The worker ------------------------------------------------------------------------------------


def test_received_submission_is_applied_by_the_celery_worker(celery_worker, contact_form):
    answer_form = AnswerForm(
        contact_form, data={"name": "林一", "phone": "13999998888", "marketing": "on"}
    )
    assert answer_form.is_valid()
    submission = services.receive_submission(answer_form, channel="website")
    deadline = time.monotonic() + 20
    while Submission.objects.get(pk=submission.pk).state != Submission.State.DONE:
        assert time.monotonic() < deadline, "the worker did not process the submission"
        time.sleep(0.05)
    customer = Submission.objects.get(pk=submission.pk).customer
    assert customer.phone == "+8613999998888"
    assert customer.consents.get().granted is True


@pytest.mark.django_db
def test_staff_user_made_with_a_role_can_own_created_customers(contact_form, teams):
    # The owner of new customers may be any user the form names, even one of another team.
    owner = make_user("form-owner", teams=[teams[1]])
    Form.objects.filter(pk=contact_form.pk).update(owner=owner)
    contact_form.refresh_from_db()
    submission = apply(contact_form, {"name": "何三", "phone": "13788889999"})
    assert submission.customer.owner == owner
    assert submission.customer.team is None
