"""Visitors fill published forms at /f/<slug>/ without signing in, in their language."""

import re
import urllib.parse

import pytest
from django.conf import settings
from django.test import Client

from intake.models import Form, FormField, Submission
from intake.public_views import HONEYPOT_FIELD, TOKEN_FIELD, form_token

pytestmark = pytest.mark.django_db


def answers(form, **values):
    """A POST body as the form's page sends it: the page's token, an empty honeypot, answers."""
    return {TOKEN_FIELD: form_token(form), HONEYPOT_FIELD: "", **values}


def field_error(content, key, message):
    """True when `message` is shown as an error inside the field block of input `key`."""
    inside = r'(?:(?!<div class="field).)*'
    block = re.search(
        rf'<div class="field has-error[^"]*">{inside}name="{key}"{inside}', content, re.S
    )
    return block is not None and message in block.group(0)


# Showing the form ---------------------------------------------------------------------------


def test_visitor_sees_a_published_form_in_chinese_by_default(client, contact_form):
    response = client.get("/f/enquiry/")
    content = response.content.decode()
    assert response.status_code == 200
    assert '<html lang="zh-hans"' in content
    assert "<h1>产品咨询</h1>" in content
    assert "姓名" in content and "Name" not in content
    # Required questions are marked, optional ones are not.
    assert re.search(r'for="id_name">姓名 <span class="required"', content)
    assert not re.search(r'for="id_phone">手机号 <span class="required"', content)
    assert 'name="phone"' in content and 'type="tel"' in content
    # The public page sets no cookie, so it works the same in another site's frame.
    assert response.cookies == {} or all(not c.value for c in response.cookies.values())


def test_english_browser_sees_the_english_texts(client, contact_form):
    response = client.get("/f/enquiry/", HTTP_ACCEPT_LANGUAGE="en-US,en;q=0.9")
    content = response.content.decode()
    assert '<html lang="en"' in content
    assert "<h1>Product enquiry</h1>" in content
    assert "Mobile phone" in content


def test_language_switcher_chooses_the_language_in_the_address(client, contact_form):
    response = client.get("/f/enquiry/?lang=en&channel=store")
    content = response.content.decode()
    assert "<h1>Product enquiry</h1>" in content
    # The switcher is a GET form that keeps the channel.
    assert '<select name="lang" id="language-select" data-autosubmit>' in content
    assert '<input type="hidden" name="channel" value="store">' in content


def test_english_text_falls_back_to_chinese_when_none_was_written(client, built_form):
    built_form({"key": "q", "label": "您的意见"}, slug="opinion", title="意见", title_en="")
    content = client.get("/f/opinion/?lang=en").content.decode()
    assert "<h1>意见</h1>" in content and "您的意见" in content


def test_unpublished_and_unknown_forms_are_not_found(client, built_form):
    built_form({"key": "q"}, slug="draft", published=False)
    assert client.get("/f/draft/").status_code == 404
    assert client.post("/f/draft/", {}).status_code == 404
    assert client.get("/f/draft/thanks/").status_code == 404
    assert client.get("/f/nothing-here/").status_code == 404


def test_help_text_and_every_question_type_render(client, built_form):
    types = [t for t in FormField.Type]
    fields = [
        {
            "key": f"q_{t.value}",
            "type": t,
            "label": f"问题 {t.value}",
            "help_text": f"说明 {t.value}",
            "choices": [{"value": "a", "label": "甲", "label_en": "A"}]
            if t in FormField.CHOICE_TYPES
            else [],
        }
        for t in types
    ]
    built_form(*fields, slug="all-types")
    content = client.get("/f/all-types/").content.decode()
    for t in types:
        assert f"说明 {t.value}" in content
    assert content.count('class="scale" id=') == 5 + 11  # rating 1-5 and NPS 0-10


# Sending answers ----------------------------------------------------------------------------


def test_valid_answers_are_stored_and_the_visitor_is_thanked(client, contact_form):
    response = client.post(
        "/f/enquiry/",
        answers(
            contact_form,
            name="王芳",
            phone="139 1234 5678",
            email="Wang.Fang@Example.com",
            marketing="on",
        ),
    )
    assert response.status_code == 302
    assert response["Location"] == "/f/enquiry/thanks/"
    submission = Submission.objects.get(form=contact_form)
    assert submission.state == Submission.State.RECEIVED
    assert submission.answers == {"marketing": True}
    assert submission.private_answers == {
        "name": "王芳",
        "phone": "+8613912345678",
        "email": "wang.fang@example.com",
    }
    assert submission.channel == "website"
    assert submission.ip_address == "127.0.0.1"
    assert submission.language == "zh-hans"


def test_thank_you_page_shows_the_forms_text_in_the_visitors_language(client, built_form):
    built_form(
        {"key": "q"},
        slug="thanks-text",
        thank_you="谢谢，我们会尽快联系您。",
        thank_you_en="Thanks, we will call you soon.",
    )
    assert "谢谢，我们会尽快联系您。" in client.get("/f/thanks-text/thanks/").content.decode()
    english = client.get("/f/thanks-text/thanks/?lang=en").content.decode()
    assert "Thanks, we will call you soon." in english


def test_submission_in_english_records_the_language_and_keeps_it(client, contact_form):
    response = client.post("/f/enquiry/?lang=en", answers(contact_form, name="Amy"))
    assert response["Location"] == "/f/enquiry/thanks/?lang=en"
    assert Submission.objects.get().language == "en"


@pytest.mark.parametrize(
    ("query", "channel"),
    [("?channel=store", "store"), ("?channel=expo", "expo"), ("?channel=bogus", "website")],
)
def test_channel_in_the_address_is_recorded(client, contact_form, query, channel):
    client.post(f"/f/enquiry/{query}", answers(contact_form, name="王芳"))
    assert Submission.objects.get().channel == channel


def test_form_with_a_redirect_sends_visitors_there(client, built_form):
    form = built_form(
        {"key": "q"}, slug="shop", redirect_url="https://shop.example.com/thanks?from=cims"
    )
    page = client.get("/f/shop/")
    # Browsers apply form-action to the redirect after a POST too.
    assert "form-action 'self' https://shop.example.com" in page["Content-Security-Policy"]
    response = client.post("/f/shop/", answers(form, q="你好"))
    assert response.status_code == 302
    assert response["Location"] == "https://shop.example.com/thanks?from=cims"
    assert Submission.objects.filter(form=form).count() == 1


def test_wrong_answers_are_shown_beside_their_questions_and_nothing_is_stored(client, contact_form):
    response = client.post(
        "/f/enquiry/?lang=en",
        answers(contact_form, name="", phone="12345", email="not-an-email"),
    )
    content = response.content.decode()
    assert response.status_code == 200
    assert field_error(content, "name", "This field is required.")
    assert field_error(content, "phone", "Enter a valid mobile number")
    assert field_error(content, "email", "Enter a valid email address.")
    # What was typed is kept.
    assert 'value="12345"' in content and 'value="not-an-email"' in content
    assert not Submission.objects.exists()


def test_choices_outside_the_options_are_refused(client, built_form):
    form = built_form(
        {
            "key": "level",
            "type": FormField.Type.CHOICE,
            "choices": [{"value": "gold", "label": "金卡"}],
            "required": True,
        },
        {"key": "score", "type": FormField.Type.NPS},
        slug="choices",
    )
    response = client.post("/f/choices/?lang=en", answers(form, level="platinum", score="11"))
    content = response.content.decode()
    assert field_error(content, "level", "Select a valid choice.")
    assert field_error(content, "score", "Select a valid choice.")
    assert not Submission.objects.exists()


def test_a_stale_page_is_shown_again_with_the_answers_kept(client, contact_form, settings):
    settings.INTAKE_FORM_TOKEN_MAX_AGE = -1
    response = client.post("/f/enquiry/?lang=en", answers(contact_form, name="王芳"))
    content = response.content.decode()
    assert response.status_code == 400
    assert "This page was open for a long time" in content
    assert 'value="王芳"' in content
    assert not Submission.objects.exists()


def test_a_token_of_another_form_is_refused(client, contact_form, built_form):
    other = built_form({"key": "q"})
    data = {**answers(contact_form, name="王芳"), TOKEN_FIELD: form_token(other)}
    assert client.post("/f/enquiry/", data).status_code == 400
    assert client.post("/f/enquiry/", {"name": "王芳"}).status_code == 400
    assert not Submission.objects.exists()


def test_django_csrf_cookie_is_not_needed(contact_form):
    # A frame on another site gets no SameSite=Lax cookie back: the page's token must suffice.
    client = Client(enforce_csrf_checks=True)
    response = client.post("/f/enquiry/", answers(contact_form, name="王芳"))
    assert response.status_code == 302
    assert Submission.objects.count() == 1


def test_form_with_verification_holds_the_submission_and_asks_for_the_code(client, contact_form):
    Form.objects.filter(pk=contact_form.pk).update(verify=Form.Verify.EMAIL)
    contact_form.refresh_from_db()
    response = client.post(
        "/f/enquiry/", answers(contact_form, name="王芳", email="wang@example.com")
    )
    submission = Submission.objects.get()
    assert submission.state == Submission.State.PENDING
    assert response.status_code == 302
    assert response["Location"] == f"/f/enquiry/verify/{submission.pk}/"


def test_wrong_method_is_refused(client, contact_form):
    assert client.put("/f/enquiry/").status_code == 405
    assert client.post("/f/enquiry/thanks/").status_code == 405


# Framing ------------------------------------------------------------------------------------


def _frame_ancestors(response):
    policy = response["Content-Security-Policy"]
    return next(d for d in policy.split("; ") if d.startswith("frame-ancestors"))


def test_forms_not_marked_embeddable_refuse_every_frame(client, contact_form):
    for url in ("/f/enquiry/", "/f/enquiry/thanks/"):
        response = client.get(url)
        assert response["X-Frame-Options"] == "DENY"
        assert _frame_ancestors(response) == "frame-ancestors 'none'"


def test_embeddable_forms_may_be_framed_by_other_sites(client, built_form):
    form = built_form({"key": "q"}, slug="embedded", embeddable=True)
    expected = "frame-ancestors " + " ".join(settings.INTAKE_FRAME_ANCESTORS)
    for response in (
        client.get("/f/embedded/"),
        client.get("/f/embedded/thanks/"),
        client.post("/f/embedded/", answers(form, q="")),
    ):
        assert "X-Frame-Options" not in response
        assert _frame_ancestors(response) == expected
    # The rest of the policy is the site's own.
    assert "script-src 'self'" in client.get("/f/embedded/")["Content-Security-Policy"]


def test_public_pages_are_not_cached_by_shared_caches(client, contact_form):
    cache_control = client.get("/f/enquiry/")["Cache-Control"]
    assert "private" in cache_control and "no-cache" in cache_control


def test_query_string_values_are_escaped(client, contact_form):
    evil = urllib.parse.quote('"><script>alert(1)</script>')
    content = client.get(f"/f/enquiry/?channel={evil}").content.decode()
    assert "<script>alert(1)</script>" not in content
