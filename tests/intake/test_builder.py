"""Staff with the permission build forms and surveys, publish them and share their links."""

import html
import importlib
import re

import pytest
from django.contrib.messages import get_messages
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import AuditEntry
from customers.models import CustomField
from intake import qr
from intake.models import Form, Submission
from tests.intake.conftest import CONTACT_FIELDS

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]

MISSING = "0190a0a0-0000-7000-8000-000000000000"


def messages_of(response):
    return [str(m) for m in get_messages(response.wsgi_request)]


def new_form(**overrides):
    data = {
        "kind": "form",
        "title": "产品咨询",
        "title_en": "Product enquiry",
        "description": "",
        "description_en": "",
        "slug": "",
        "thank_you": "",
        "thank_you_en": "",
        "redirect_url": "",
        "verify": "",
        "source": "web_form",
        "owner": "",
        "team": "",
    }
    data.update(overrides)
    return data


def new_field(**overrides):
    data = {
        "type": "text",
        "label": "公司",
        "label_en": "Company",
        "help_text": "",
        "help_text_en": "",
        "target": "",
        "key": "",
        "choices_text": "",
    }
    data.update(overrides)
    return data


def audit_actions():
    entries = AuditEntry.objects.filter(action__startswith="form.").order_by("seq")
    return list(entries.values_list("action", flat=True))


def submit(form, **answers):
    return Submission.objects.create(form=form, answers=answers)


@pytest.fixture
def draft(built_form):
    return built_form(published=False, slug="draft", title="草稿", title_en="Draft")


# List ---------------------------------------------------------------------------------------


def test_staff_see_forms_and_surveys_with_their_state_and_submissions(client, staff, built_form):
    enquiry = built_form({"key": "q"}, slug="enquiry", title_en="Enquiry")
    survey = built_form({"key": "q"}, slug="nps", kind="survey", published=False)
    for _n in range(3):
        submit(enquiry)
    client.force_login(staff)
    response = client.get("/forms/")
    content = response.content.decode()
    assert response.status_code == 200
    rows = {form.slug: form for form in response.context["page"]}
    assert rows["enquiry"].submission_count == 3
    assert rows["nps"].submission_count == 0
    assert "Published" in content and "Draft" in content
    assert f'href="/forms/{enquiry.pk}/"' in content
    surveys = client.get("/forms/?kind=survey").context["page"]
    assert [form.pk for form in surveys] == [survey.pk]
    # Staff may look but not build.
    assert "New form" not in content


def test_submission_counts_are_read_in_one_grouped_query(client, staff, built_form):
    for _number in range(5):
        submit(built_form({"key": "q"}))
    client.force_login(staff)
    with CaptureQueriesContext(connection) as queries:
        client.get("/forms/")
    reading_submissions = [q for q in queries if "intake_submission" in q["sql"]]
    assert len(reading_submissions) == 1
    assert "GROUP BY" in reading_submissions[0]["sql"]


def test_viewers_and_auditors_cannot_see_forms(client, viewer, auditor, verified_login):
    for user in (viewer, auditor):
        client.force_login(user)
        assert client.get("/forms/").status_code == 403


def test_forms_link_in_the_main_navigation_follows_the_permission(client, staff, viewer):
    client.force_login(staff)
    assert 'href="/forms/"' in client.get("/customers/").content.decode()
    client.force_login(viewer)
    assert 'href="/forms/"' not in client.get("/customers/").content.decode()


# Creating and editing -----------------------------------------------------------------------


def test_manager_creates_a_form_with_an_address_made_from_the_title(manager_client, manager):
    response = manager_client.post("/forms/new/", new_form(owner=manager.pk))
    form = Form.objects.get(title="产品咨询")
    assert response.status_code == 302
    assert response["Location"] == f"/forms/{form.pk}/"
    assert form.slug == "product-enquiry"
    assert form.created_by == manager and form.owner == manager
    assert not form.is_published
    assert audit_actions() == ["form.create"]


def test_address_from_a_chinese_title_is_pinyin_and_unique(manager_client, built_form):
    built_form(slug="chan-pin-zi-xun")
    manager_client.post("/forms/new/", new_form(title_en=""))
    assert Form.objects.filter(slug="chan-pin-zi-xun-2").exists()


def test_address_must_be_unique(manager_client, built_form):
    built_form(slug="taken")
    response = manager_client.post("/forms/new/", new_form(slug="taken"))
    assert response.status_code == 200
    assert "Form with this Address already exists." in response.content.decode()


@pytest.mark.parametrize("url", ["javascript:alert(1)", "ftp://files.example.com/", "/relative"])
def test_redirect_address_must_be_http_or_https(manager_client, url):
    response = manager_client.post("/forms/new/", new_form(redirect_url=url))
    assert response.status_code == 200
    assert response.context["settings_form"].errors["redirect_url"] == ["Enter a valid URL."]
    assert not Form.objects.filter(title="产品咨询").exists()


def test_owner_and_team_are_limited_to_those_the_user_may_assign(
    manager_client, staff, staff2, teams
):
    response = manager_client.get("/forms/new/")
    owners = list(response.context["settings_form"].fields["owner"].queryset)
    teams_offered = list(response.context["settings_form"].fields["team"].queryset)
    assert staff in owners and staff2 not in owners
    assert teams_offered == [teams[0]]
    response = manager_client.post("/forms/new/", new_form(owner=staff2.pk, team=teams[1].pk))
    errors = response.context["settings_form"].errors
    assert "owner" in errors and "team" in errors


def test_verification_is_offered_only_with_a_field_to_verify(manager_client, built_form):
    plain = built_form({"key": "q"})
    with_email = built_form(*CONTACT_FIELDS[:1], CONTACT_FIELDS[2])
    offered = manager_client.get(f"/forms/{plain.pk}/settings/").context["settings_form"]
    assert [v for v, _label in offered.fields["verify"].choices] == [""]
    offered = manager_client.get(f"/forms/{with_email.pk}/settings/").context["settings_form"]
    assert [v for v, _label in offered.fields["verify"].choices] == ["", "email"]
    response = manager_client.post(
        f"/forms/{plain.pk}/settings/", new_form(slug=plain.slug, verify="email")
    )
    assert "verify" in response.context["settings_form"].errors


def test_manager_edits_the_settings_and_the_change_is_audited(manager_client, contact_form):
    response = manager_client.post(
        f"/forms/{contact_form.pk}/settings/",
        new_form(slug="enquiry", title="新标题", verify="phone", embeddable="on"),
    )
    assert response.status_code == 302
    contact_form.refresh_from_db()
    assert (contact_form.title, contact_form.verify, contact_form.embeddable) == (
        "新标题",
        "phone",
        True,
    )
    entry = AuditEntry.objects.get(action="form.update")
    assert entry.data["changes"]["title"] == ["产品咨询", "新标题"]


def test_changing_a_published_forms_address_warns_about_printed_codes(manager_client, contact_form):
    response = manager_client.post(
        f"/forms/{contact_form.pk}/settings/", new_form(slug="new-address")
    )
    assert any("QR codes with the old address" in m for m in messages_of(response))


def test_staff_and_viewers_cannot_create_or_edit_forms(client, staff, viewer, contact_form):
    for user in (staff, viewer):
        client.force_login(user)
        assert client.get("/forms/new/").status_code == 403
        assert client.post("/forms/new/", new_form()).status_code == 403
        assert client.post(f"/forms/{contact_form.pk}/settings/", new_form()).status_code == 403
    assert not Form.objects.filter(title="产品咨询").exclude(pk=contact_form.pk).exists()


def test_anonymous_visitors_are_sent_to_sign_in(client, contact_form):
    response = client.get(f"/forms/{contact_form.pk}/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_an_unknown_form_is_not_found(manager_client):
    assert manager_client.get(f"/forms/{MISSING}/").status_code == 404
    assert manager_client.post(f"/forms/{MISSING}/publish/").status_code == 404


# Questions ----------------------------------------------------------------------------------


def test_manager_adds_a_question_with_a_key_made_from_the_label(manager_client, draft):
    response = manager_client.post(
        f"/forms/{draft.pk}/questions/new/", new_field(label="公司名称", label_en="")
    )
    field = draft.fields.get()
    assert response.status_code == 302
    assert response["Location"] == f"/forms/{draft.pk}/#field-{field.pk}"
    assert field.key == "gong_si_ming_cheng"
    entry = AuditEntry.objects.get(action="form.field")
    assert entry.data["change"] == "added" and entry.data["field"] == "gong_si_ming_cheng"


def test_new_questions_go_last_and_keys_stay_unique(manager_client, draft):
    for _n in range(2):
        manager_client.post(f"/forms/{draft.pk}/questions/new/", new_field())
    assert list(draft.fields.values_list("key", "position")) == [
        ("company", 1),
        ("company_2", 2),
    ]
    response = manager_client.post(f"/forms/{draft.pk}/questions/new/", new_field(key="company"))
    assert response.context["field_form"].errors["key"] == [
        "Another question of this form has this key."
    ]
    response = manager_client.post(f"/forms/{draft.pk}/questions/new/", new_field(key="9lives"))
    assert "Start with a letter" in response.context["field_form"].errors["key"][0]


@pytest.mark.parametrize(
    ("type_", "target", "message"),
    [
        ("text", "customer:email", "of type Email"),
        ("text", "customer:phone", "of type Mobile phone"),
        ("text", "customer:birthday", "of type Date"),
        ("email", "customer:company", "of type Text"),
        ("boolean", "consent:marketing_email", "of type Consent checkbox"),
        ("consent", "customer:notes", "of type Text or Long text"),
    ],
)
def test_a_question_type_must_fit_where_its_answer_goes(
    manager_client, draft, type_, target, message
):
    response = manager_client.post(
        f"/forms/{draft.pk}/questions/new/", new_field(type=type_, target=target)
    )
    assert response.status_code == 200
    assert message in response.context["field_form"].errors["target"][0]
    assert not draft.fields.exists()


def test_each_target_is_used_once_per_form(manager_client, contact_form):
    response = manager_client.post(
        f"/forms/{contact_form.pk}/questions/new/",
        new_field(type="email", target="customer:email", label="Email again"),
    )
    assert "already saved here" in response.context["field_form"].errors["target"][0]


def test_choice_options_are_typed_one_a_line(manager_client, draft):
    manager_client.post(
        f"/forms/{draft.pk}/questions/new/",
        new_field(
            type="choice",
            label="会员等级",
            key="level",
            choices_text="gold | 金卡 | Gold\n\nsilver | 银卡\n普通",
        ),
    )
    assert draft.fields.get().choices == [
        {"value": "gold", "label": "金卡", "label_en": "Gold"},
        {"value": "silver", "label": "银卡", "label_en": ""},
        {"value": "普通", "label": "普通", "label_en": ""},
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "Give at least one option."),
        ("a | b | c | d", "Line 1 has more than three parts"),
        ("a | 甲\na | 乙", "Line 2 repeats the value “a”"),
        ("ok\n | 空", "Line 2 needs a value and a label."),
    ],
)
def test_bad_options_are_explained(manager_client, draft, text, message):
    response = manager_client.post(
        f"/forms/{draft.pk}/questions/new/", new_field(type="multi_choice", choices_text=text)
    )
    assert message in response.context["field_form"].errors["choices_text"][0]


def test_gender_options_must_be_genders_and_default_to_them(manager_client, draft):
    response = manager_client.post(
        f"/forms/{draft.pk}/questions/new/",
        new_field(type="choice", target="customer:gender", choices_text="m | 男\nx | 未知"),
    )
    assert (
        "not options of where the answer is saved: m, x"
        in (response.context["field_form"].errors["choices_text"][0])
    )
    manager_client.post(
        f"/forms/{draft.pk}/questions/new/",
        new_field(type="choice", target="customer:gender", label="性别"),
    )
    choices = draft.fields.get().choices
    assert [c["value"] for c in choices] == ["female", "male", "other"]
    assert choices[0]["label_en"] == "Female"


def test_custom_attribute_questions_match_the_attribute(manager_client, draft, custom_fields):
    post = lambda **data: manager_client.post(  # noqa: E731
        f"/forms/{draft.pk}/questions/new/", new_field(**data)
    )
    response = post(type="text", target="attribute:score")
    assert (
        "of type Number or Rating 1 to 5 or Recommendation 0 to 10"
        in (response.context["field_form"].errors["target"][0])
    )
    response = post(type="choice", target="attribute:level", choices_text="platinum | 白金")
    assert "platinum" in response.context["field_form"].errors["choices_text"][0]
    assert post(type="rating", target="attribute:score", key="score").status_code == 302
    assert post(type="multi_choice", target="attribute:interests", key="i").status_code == 302
    assert draft.fields.get(key="i").choices[0] == {
        "value": "golf",
        "label": "golf",
        "label_en": "",
    }


def test_inactive_custom_attributes_cannot_be_chosen(manager_client, draft, custom_fields):
    CustomField.objects.filter(key="hobby").update(active=False)
    response = manager_client.post(
        f"/forms/{draft.pk}/questions/new/", new_field(target="attribute:hobby")
    )
    assert "Select a valid choice" in response.context["field_form"].errors["target"][0]


def test_marketing_consent_cannot_be_required(manager_client, draft):
    response = manager_client.post(
        f"/forms/{draft.pk}/questions/new/",
        new_field(type="consent", target="consent:sms", required="on", label="我同意接收短信"),
    )
    assert "must be optional" in response.context["field_form"].errors["required"][0]
    data_processing = new_field(
        type="consent", target="consent:data_processing", required="on", label="我同意处理"
    )
    manager_client.post(f"/forms/{draft.pk}/questions/new/", data_processing)
    assert draft.fields.get().required


def test_changing_a_consents_wording_starts_a_new_version(manager_client, contact_form):
    consent = contact_form.fields.get(key="marketing")
    url = f"/forms/{contact_form.pk}/questions/{consent.pk}/"
    same = new_field(
        type="consent",
        target="consent:marketing_email",
        key="marketing",
        label=consent.label,
        label_en=consent.label_en,
        help_text="随时可以退订",
    )
    manager_client.post(url, same)
    consent.refresh_from_db()
    assert consent.wording_version == 1
    manager_client.post(url, {**same, "label_en": "I agree to receive offers."})
    consent.refresh_from_db()
    assert consent.wording_version == 2
    entry = AuditEntry.objects.filter(action="form.field").order_by("-seq").first()
    assert entry.data["changes"]["wording_version"] == [1, 2]


def test_key_and_type_are_fixed_once_answers_arrived(manager_client, contact_form):
    submit(contact_form, marketing=True)
    name = contact_form.fields.get(key="name")
    manager_client.post(
        f"/forms/{contact_form.pk}/questions/{name.pk}/",
        new_field(type="long_text", key="full_name", label="全名", target="customer:display_name"),
    )
    name.refresh_from_db()
    assert (name.key, name.type, name.label) == ("name", "text", "全名")


def test_the_number_of_questions_is_limited(manager_client, built_form, settings):
    settings.INTAKE_MAX_FIELDS_PER_FORM = 2
    form = built_form({"key": "a"}, {"key": "b"})
    response = manager_client.post(f"/forms/{form.pk}/questions/new/", new_field())
    assert "at most 2 questions" in response.content.decode()
    assert form.fields.count() == 2


def test_questions_move_up_and_down_without_javascript(manager_client, built_form):
    form = built_form({"key": "a"}, {"key": "b"}, {"key": "c"})
    c = form.fields.get(key="c")
    response = manager_client.post(f"/forms/{form.pk}/questions/{c.pk}/move/", {"direction": "up"})
    assert response.status_code == 302
    assert response["Location"] == f"/forms/{form.pk}/#field-{c.pk}"
    assert list(form.fields.values_list("key", flat=True)) == ["a", "c", "b"]
    a = form.fields.get(key="a")
    manager_client.post(f"/forms/{form.pk}/questions/{a.pk}/move/", {"direction": "up"})
    manager_client.post(f"/forms/{form.pk}/questions/{a.pk}/move/", {"direction": "down"})
    assert list(form.fields.values_list("key", flat=True)) == ["c", "a", "b"]
    assert manager_client.get(f"/forms/{form.pk}/questions/{a.pk}/move/").status_code == 405
    moves = AuditEntry.objects.filter(action="form.field", data__change="moved")
    assert moves.count() == 2


def test_move_buttons_are_on_the_forms_page(manager_client, built_form):
    form = built_form({"key": "a"}, {"key": "b"})
    content = manager_client.get(f"/forms/{form.pk}/").content.decode()
    assert content.count('name="direction" value="up"') == 2
    # The first cannot go up and the last cannot go down.
    assert re.search(r'value="up"[^>]*disabled', content)


def test_a_question_of_another_form_is_not_found(manager_client, built_form):
    form, other = built_form({"key": "a"}), built_form({"key": "b"})
    field = other.fields.get()
    assert manager_client.get(f"/forms/{form.pk}/questions/{field.pk}/").status_code == 404
    response = manager_client.post(
        f"/forms/{form.pk}/questions/{field.pk}/move/", {"direction": "up"}
    )
    assert response.status_code == 404


def test_manager_deletes_a_question(manager_client, contact_form):
    phone = contact_form.fields.get(key="phone")
    url = f"/forms/{contact_form.pk}/questions/{phone.pk}/delete/"
    assert manager_client.get(url).status_code == 200
    assert manager_client.post(url).status_code == 302
    assert not contact_form.fields.filter(key="phone").exists()
    assert AuditEntry.objects.get(action="form.field").data["change"] == "deleted"


def test_the_question_verification_needs_cannot_be_deleted_or_moved_elsewhere(
    manager_client, contact_form
):
    Form.objects.filter(pk=contact_form.pk).update(verify="email")
    email = contact_form.fields.get(key="email")
    response = manager_client.post(f"/forms/{contact_form.pk}/questions/{email.pk}/delete/")
    assert "turn verification off first" in messages_of(response)[0]
    response = manager_client.post(
        f"/forms/{contact_form.pk}/questions/{email.pk}/",
        new_field(type="email", key="email", target=""),
    )
    assert "turn verification off" in response.context["field_form"].errors["target"][0]
    assert contact_form.fields.filter(key="email", target="customer:email").exists()


def test_staff_cannot_change_questions(client, staff, contact_form):
    client.force_login(staff)
    field = contact_form.fields.first()
    assert client.post(f"/forms/{contact_form.pk}/questions/new/", new_field()).status_code == 403
    assert client.post(f"/forms/{contact_form.pk}/questions/{field.pk}/delete/").status_code == 403
    move = client.post(
        f"/forms/{contact_form.pk}/questions/{field.pk}/move/", {"direction": "down"}
    )
    assert move.status_code == 403
    assert contact_form.fields.count() == len(CONTACT_FIELDS)


# Publishing and deleting --------------------------------------------------------------------


def test_a_form_without_questions_cannot_be_published(manager_client, draft, client):
    response = manager_client.post(f"/forms/{draft.pk}/publish/")
    assert "Add at least one question" in messages_of(response)[0]
    draft.refresh_from_db()
    assert not draft.is_published


def test_publishing_opens_the_public_link_and_unpublishing_closes_it(
    manager_client, built_form, client
):
    form = built_form({"key": "q"}, published=False, slug="soon")
    assert client.get("/f/soon/").status_code == 404
    assert manager_client.post(f"/forms/{form.pk}/publish/").status_code == 302
    assert client.get("/f/soon/").status_code == 200
    assert manager_client.post(f"/forms/{form.pk}/unpublish/").status_code == 302
    assert client.get("/f/soon/").status_code == 404
    assert audit_actions() == ["form.publish", "form.unpublish"]


def test_publish_and_unpublish_need_post_and_the_permission(client, staff, contact_form):
    client.force_login(staff)
    assert client.get(f"/forms/{contact_form.pk}/publish/").status_code == 405
    assert client.post(f"/forms/{contact_form.pk}/unpublish/").status_code == 403
    contact_form.refresh_from_db()
    assert contact_form.is_published


def test_manager_deletes_a_form_without_submissions(manager_client, draft):
    assert manager_client.get(f"/forms/{draft.pk}/delete/").status_code == 200
    response = manager_client.post(f"/forms/{draft.pk}/delete/")
    assert response["Location"] == "/forms/"
    assert not Form.objects.filter(pk=draft.pk).exists()
    assert audit_actions() == ["form.delete"]


def test_a_form_with_submissions_is_unpublished_rather_than_deleted(manager_client, contact_form):
    submit(contact_form)
    page = manager_client.get(f"/forms/{contact_form.pk}/delete/").content.decode()
    assert "Unpublish it instead" in page
    response = manager_client.post(f"/forms/{contact_form.pk}/delete/")
    assert response["Location"] == f"/forms/{contact_form.pk}/"
    assert "cannot be deleted. Unpublish it instead." in messages_of(response)[0]
    assert Form.objects.filter(pk=contact_form.pk).exists()


def test_staff_cannot_delete_forms(client, staff, draft):
    client.force_login(staff)
    assert client.post(f"/forms/{draft.pk}/delete/").status_code == 403
    assert Form.objects.filter(pk=draft.pk).exists()


# Preview and sharing ------------------------------------------------------------------------


def test_preview_shows_an_unpublished_form_marked_with_sending_off(client, staff, built_form):
    form = built_form({"key": "q", "label": "您的问题"}, published=False)
    client.force_login(staff)
    response = client.get(f"/forms/{form.pk}/preview/")
    content = response.content.decode()
    assert response.status_code == 200
    assert '<div class="preview-banner" role="note">' in content
    assert "The form is not published yet." in content
    assert "您的问题" in content
    assert '<button type="submit" class="button primary block" disabled>' in content
    assert client.post(f"/forms/{form.pk}/preview/").status_code == 405


def test_forms_page_shows_the_link_qr_code_and_channel_choice(client, staff, contact_form):
    client.force_login(staff)
    content = client.get(f"/forms/{contact_form.pk}/?channel=store").content.decode()
    assert 'value="http://testserver/f/enquiry/?channel=store"' in content
    assert f'src="/forms/{contact_form.pk}/qr.svg?channel=store"' in content
    assert f"/forms/{contact_form.pk}/qr.png?channel=store&amp;download=1" in content
    # Only embeddable forms offer embed code.
    assert "&lt;iframe" not in content


def test_embeddable_forms_offer_an_iframe_snippet(client, staff, built_form):
    form = built_form({"key": "q"}, slug="embed-me", embeddable=True)
    client.force_login(staff)
    content = client.get(f"/forms/{form.pk}/").content.decode()
    assert '<iframe src="http://testserver/f/embed-me/"' in embed_code(content)


def embed_code(page):
    """The embed code as a person sees it in its box and copies it."""
    box = re.search(r'<textarea id="embed-code"[^>]*>(.*?)</textarea>', page, re.S)
    return html.unescape(box.group(1))


@pytest.mark.parametrize("image_format", ["png", "svg"])
def test_qr_codes_download_with_the_public_address(client, staff, contact_form, image_format):
    client.force_login(staff)
    response = client.get(f"/forms/{contact_form.pk}/qr.{image_format}?channel=expo&download=1")
    assert response.status_code == 200
    assert response["Content-Disposition"] == (
        f'attachment; filename="enquiry-expo-qr.{image_format}"'
    )
    expected, content_type = qr.image("http://testserver/f/enquiry/?channel=expo", image_format)
    assert response["Content-Type"] == content_type
    assert response.content == expected
    signature = b"\x89PNG" if image_format == "png" else b"<svg"
    assert signature in response.content[:200]


def test_unknown_qr_formats_are_not_found(client, staff, contact_form):
    client.force_login(staff)
    assert client.get(f"/forms/{contact_form.pk}/qr.gif").status_code == 404


def test_builder_pages_cannot_be_framed(manager_client, contact_form):
    response = manager_client.get(f"/forms/{contact_form.pk}/")
    assert response["X-Frame-Options"] == "DENY"


def test_published_at_is_kept_when_publishing_twice(manager_client, contact_form):
    before = Form.objects.get(pk=contact_form.pk).published_at
    manager_client.post(f"/forms/{contact_form.pk}/publish/")
    assert Form.objects.get(pk=contact_form.pk).published_at == before
    assert before < timezone.now()


# Demo data ----------------------------------------------------------------------------------


def test_demo_forms_are_published_follow_the_builders_rules_and_are_made_once(manager):
    from intake.builder_forms import FieldForm, choices_as_text
    from intake.demo import ensure_demo_forms

    enquiry, survey = ensure_demo_forms(manager)
    assert ensure_demo_forms(manager) == [enquiry, survey]
    assert Form.objects.filter(slug__in=["product-enquiry", "satisfaction"]).count() == 2
    assert (enquiry.title_en, survey.title_en) == ("Product enquiry", "Satisfaction survey")
    assert enquiry.is_published and survey.is_published and survey.kind == "survey"
    assert enquiry.owner == manager
    assert enquiry.fields.count() == 6 and survey.fields.count() == 5
    types = set(survey.fields.values_list("type", flat=True))
    assert types == {"rating", "nps", "choice", "multi_choice", "long_text"}
    for field in [*enquiry.fields.all(), *survey.fields.all()]:
        data = {
            **{name: getattr(field, name) for name in FIELD_NAMES},
            "required": "on" if field.required else "",
            "choices_text": choices_as_text(field.choices),
        }
        checked = FieldForm(field.form, data, instance=field)
        assert checked.is_valid(), (field.key, checked.errors)


FIELD_NAMES = ["type", "label", "label_en", "help_text", "help_text_en", "target", "key"]


def test_embed_code_keeps_a_quote_in_the_title_inside_its_attribute(manager_client, built_form):
    form = built_form(
        {"key": "name", "type": "text"}, title='Say "hi" <b>', title_en="", embeddable=True
    )
    code = embed_code(manager_client.get(f"/forms/{form.pk}/").text)
    assert 'title="Say &quot;hi&quot; &lt;b&gt;"' in code


def test_the_quick_entry_form_is_never_published_deleted_or_moved(manager_client):
    from django.apps import apps

    migration = importlib.import_module("intake.migrations.0002_quick_entry_form")
    form = migration.create_quick_entry_form(apps)
    manager_client.post(f"/forms/{form.pk}/publish/")
    manager_client.post(f"/forms/{form.pk}/delete/")
    form.refresh_from_db()
    assert not form.is_published
    page = manager_client.get(f"/forms/{form.pk}/").text
    assert "/entry/" in page and f"/forms/{form.pk}/delete/" not in page
    settings_page = manager_client.get(f"/forms/{form.pk}/settings/").text
    assert (
        'name="slug"' in settings_page and "disabled" in settings_page.split('name="slug"')[1][:200]
    )
