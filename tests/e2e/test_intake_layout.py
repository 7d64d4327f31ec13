"""Pages for collecting customer information, as people use them on a desk and on a phone."""

import pytest
from django.conf import settings
from django.utils import timezone
from playwright.sync_api import expect

from intake.models import Form, FormField
from tests.customers.import_helpers import csv_bytes, make_import, media  # noqa: F401 (fixture)
from tests.e2e.test_layout import assert_fits_the_screen

pytestmark = pytest.mark.e2e


@pytest.fixture
def manager_page(context, live_server, client, manager, verified_login):
    verified_login(client, manager)
    session = client.cookies[settings.SESSION_COOKIE_NAME].value
    context.add_cookies(
        [{"name": settings.SESSION_COOKIE_NAME, "value": session, "url": live_server.url}]
    )
    return context.new_page()


def test_every_column_of_an_import_can_be_mapped_without_scrolling_sideways(manager_page, manager):
    row = ["王芳", "139 0013 9000", "wang@example.com", "1990/1/2", "深圳光明国际贸易有限公司"]
    rows = [[*row, "Lead", "女", "", "VIP", "C1"]]
    job = make_import(manager, csv_bytes(rows))
    page = manager_page

    page.goto(f"/customers/import/{job.pk}/columns/")

    expect(page.get_by_label("手机")).to_have_value("phone")
    assert_fits_the_screen(page)
    width = page.viewport_size["width"]
    for select in page.locator(".import-mapping select").all():
        box = select.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= width, "a column's menu is off screen"


@pytest.fixture
def rated_survey(transactional_db):
    form = Form.objects.create(
        kind=Form.Kind.SURVEY,
        slug="visit",
        title="到店体验",
        title_en="Store visit",
        published_at=timezone.now(),
    )
    for position, (key, type_) in enumerate([("overall", "rating"), ("recommend", "nps")]):
        FormField.objects.create(
            form=form, key=key, type=type_, label=key, label_en=key.title(), position=position
        )
    return form


def test_rating_scales_say_what_their_ends_mean_and_are_easy_to_tap(
    page, live_server, rated_survey
):
    page.goto(f"{live_server.url}/f/visit/?lang=en")

    overall = page.get_by_role("group", name="Overall")
    expect(overall).to_contain_text("1 = lowest")
    expect(overall).to_contain_text("5 = highest")
    recommend = page.get_by_role("group", name="Recommend")
    expect(recommend).to_contain_text("0 = not at all likely")
    expect(recommend).to_contain_text("10 = extremely likely")
    assert_fits_the_screen(page)
    for label in page.locator("label:has(> input.scale)").all():
        box = label.bounding_box()
        assert box["height"] >= 36 and box["width"] >= 36, "a score is too small to tap"

    recommend.get_by_text("9", exact=True).click()
    expect(page.get_by_role("radio", name="9", exact=True)).to_be_checked()


def test_options_box_appears_only_for_questions_with_options(manager_page, rated_survey):
    page = manager_page
    page.goto(f"/forms/{rated_survey.pk}/questions/new/")

    options = page.get_by_label("Options")
    expect(options).to_be_hidden()
    page.get_by_label("Type").select_option("multi_choice")
    expect(options).to_be_visible()
    options.fill("quality | 质量 | Quality")
    page.get_by_label("Type").select_option("text")
    # Options already typed in stay in sight rather than being sent unseen.
    expect(options).to_be_visible()
    assert_fits_the_screen(page)
