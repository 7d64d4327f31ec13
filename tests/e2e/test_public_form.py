"""A visitor fills a public form on a phone and in a frame on another site; a manager builds one."""

import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.conf import settings
from playwright.sync_api import expect

from intake.models import Form, Submission
from tests.intake.conftest import CONTACT_FIELDS, build_contact_form, build_form

pytestmark = pytest.mark.e2e


@pytest.fixture
def contact_form(transactional_db):
    return build_contact_form()


@pytest.fixture
def other_site(live_server):
    """other_site(src) -> the address of a page on another site that shows `src` in a frame.

    The page is served from 127.0.0.1 and the live server answers as localhost: both on this
    machine, so the browser's local-network checks allow the frame, yet different sites for
    frames and cookies.
    """
    assert "//localhost:" in live_server.url
    pages = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = pages.get(self.path, "").encode()
            self.send_response(200 if body else 204)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    def page_framing(src):
        pages["/"] = (
            f'<!doctype html><title>Shop</title><h1>Shop</h1><iframe src="{src}" '
            'title="Enquiry" width="360" height="900"></iframe>'
        )
        return f"http://127.0.0.1:{server.server_address[1]}/"

    yield page_framing
    server.shutdown()
    server.server_close()


def test_visitor_fills_in_a_form_sees_mistakes_and_is_thanked(page, live_server, contact_form):
    page.goto(f"{live_server.url}/f/enquiry/?channel=store")
    expect(page.get_by_role("heading", name="Product enquiry")).to_be_visible()
    # Nothing on the page is wider than the screen, down to a 375 px phone.
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")

    page.get_by_label("Mobile phone").fill("12345")
    page.get_by_role("button", name="Send").click()
    name_block = page.locator(".field", has=page.get_by_label("Name"))
    expect(name_block.locator(".field-error")).to_have_text("This field is required.")
    phone_block = page.locator(".field", has=page.get_by_label("Mobile phone"))
    expect(phone_block.locator(".field-error")).to_contain_text("Enter a valid mobile number")
    expect(page.get_by_label("Mobile phone")).to_have_value("12345")
    assert not Submission.objects.exists()

    page.get_by_label("Name").fill("王芳")
    page.get_by_label("Mobile phone").fill("139 1234 5678")
    page.get_by_label("I agree to receive news").check()
    page.get_by_role("button", name="Send").click()
    expect(page.get_by_role("heading", name="Thank you")).to_be_visible()
    submission = Submission.objects.get()
    assert submission.private_answers["phone"] == "+8613912345678"
    assert submission.answers == {"marketing": True}
    assert submission.channel == "store"


def test_visitor_switches_the_form_to_chinese(page, live_server, contact_form):
    page.goto(f"{live_server.url}/f/enquiry/")
    page.get_by_label("Language").select_option("zh-hans")
    expect(page.get_by_role("heading", name="产品咨询")).to_be_visible()
    assert "lang=zh-hans" in page.url


def test_embeddable_form_works_in_a_frame_on_another_site(page, live_server, settings, other_site):
    settings.INTAKE_FRAME_ANCESTORS = ["'self'", "http:"]
    build_form(*CONTACT_FIELDS, slug="embedded", title_en="Enquiry", embeddable=True)
    page.goto(other_site(f"{live_server.url}/f/embedded/?channel=app"))
    frame = page.frame_locator("iframe")
    # The frame gets no cookie of ours, so sending works without Django's CSRF cookie.
    frame.get_by_label("Name").fill("Amy Chen")
    frame.get_by_role("button", name="Send").click()
    expect(frame.get_by_role("heading", name="Thank you")).to_be_visible()
    submission = Submission.objects.get(form__slug="embedded")
    assert submission.private_answers["name"] == "Amy Chen"
    assert submission.channel == "app"
    assert page.context.cookies(live_server.url) == []


def test_form_not_marked_embeddable_refuses_the_frame(
    page, live_server, contact_form, page_problems, other_site
):
    with page.expect_response(f"{live_server.url}/f/enquiry/") as framed:
        page.goto(other_site(f"{live_server.url}/f/enquiry/"))
    assert framed.value.headers["x-frame-options"] == "DENY"
    expect(page.get_by_role("heading", name="Shop")).to_be_visible()
    page.wait_for_timeout(300)
    frame = page.frame_locator("iframe")
    expect(frame.get_by_role("heading", name="Product enquiry")).to_have_count(0)
    # The browser reports the refusal, which is what this test expects.
    page_problems.clear()


@pytest.fixture
def manager_page(context, live_server, client, manager, verified_login):
    verified_login(client, manager)
    session = client.cookies[settings.SESSION_COOKIE_NAME].value
    context.add_cookies(
        [{"name": settings.SESSION_COOKIE_NAME, "value": session, "url": live_server.url}]
    )
    return context.new_page()


def test_manager_builds_and_publishes_a_form(manager_page, live_server, screenshot):
    page = manager_page
    page.goto(f"{live_server.url}/forms/")
    page.get_by_role("link", name="New form").click()
    page.locator("#id_title").fill("门店登记")
    page.get_by_label("English title").fill("Store sign-up")
    page.get_by_role("button", name="Create form").click()
    expect(page.get_by_role("heading", name="Store sign-up")).to_be_visible()

    page.get_by_role("link", name="Add question").click()
    page.locator("#id_label").fill("姓名")
    page.get_by_label("English label").fill("Name")
    page.get_by_label("Required").check()
    page.get_by_label("Saved to").select_option("customer:display_name")
    page.get_by_role("button", name="Add question").click()

    page.get_by_role("link", name="Add question").click()
    page.get_by_label("Type").select_option("consent")
    page.locator("#id_label").fill("我同意接收短信")
    page.get_by_label("English label").fill("Text me offers")
    page.get_by_label("Saved to").select_option("consent:sms")
    page.get_by_role("button", name="Add question").click()

    questions = page.locator(".question")
    expect(questions).to_have_count(2)
    # Without JavaScript-only tricks: the move buttons are plain form posts.
    questions.nth(1).get_by_role("button", name="Move up").click()
    expect(page.locator(".question").first).to_contain_text("Text me offers")

    page.get_by_role("button", name="Publish").click()
    expect(page.locator(".message")).to_contain_text("Published")
    screenshot(page, "form-builder")
    form = Form.objects.get(title_en="Store sign-up")
    assert form.is_published and form.slug == "store-sign-up"
    assert list(form.fields.values_list("key", flat=True)) == ["text_me_offers", "name"]

    public_url = page.get_by_label("Public link").input_value()
    assert re.fullmatch(rf"{live_server.url}/f/store-sign-up/", public_url)
    page.goto(public_url)
    expect(page.get_by_role("heading", name="Store sign-up")).to_be_visible()
    expect(page.get_by_label("Text me offers")).to_be_visible()
