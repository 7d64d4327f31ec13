"""Survey results in a real browser: charts drawn within the Content Security Policy."""

import pytest
from django.conf import settings
from django.utils import timezone
from playwright.sync_api import expect

from intake.models import Form, FormField, Submission

pytestmark = pytest.mark.e2e


@pytest.fixture
def survey(transactional_db):
    form = Form.objects.create(
        kind=Form.Kind.SURVEY,
        slug="store-visit",
        title="到店体验",
        title_en="Store visit",
        published_at=timezone.now(),
    )
    specs = [
        ("channel", FormField.Type.CHOICE, "How did you hear of us?"),
        ("again", FormField.Type.BOOLEAN, "Would you come again?"),
        ("score", FormField.Type.RATING, "Your rating"),
        ("recommend", FormField.Type.NPS, "Would you recommend us?"),
        ("spent", FormField.Type.NUMBER, "Minutes in the store"),
    ]
    for position, (key, type_, label) in enumerate(specs):
        FormField.objects.create(
            form=form,
            key=key,
            type=type_,
            label=label,
            label_en=label,
            position=position,
            choices=[
                {"value": "friend", "label": "朋友", "label_en": "A friend"},
                {"value": "ad", "label": "广告", "label_en": "An advert"},
            ]
            if type_ == FormField.Type.CHOICE
            else [],
        )
    for n in range(12):
        Submission.objects.create(
            form=form,
            state=Submission.State.DONE,
            answers={
                "channel": "friend" if n % 3 else "ad",
                "again": n % 4 != 0,
                "score": 1 + n % 5,
                "recommend": n % 11,
                "spent": 5 + n,
            },
        )
    return form


@pytest.fixture
def manager_page(context, live_server, manager, verified_login):
    from django.test import Client

    client = verified_login(Client(), manager)
    session = client.cookies[settings.SESSION_COOKIE_NAME].value
    context.add_cookies(
        [{"name": settings.SESSION_COOKIE_NAME, "value": session, "url": live_server.url}]
    )
    return context.new_page()


def test_results_page_draws_a_chart_per_question(manager_page, survey, screenshot):
    page = manager_page
    page.goto(f"/forms/{survey.pk}/results/")
    expect(page.get_by_role("heading", name="Results: Store visit")).to_be_visible()
    drawn = page.locator(".chart.chart-drawn")
    expect(drawn).to_have_count(4)  # the number question has a table only
    for chart in drawn.all():
        expect(chart.locator("canvas")).to_have_count(1)
    # The tables are there as well, with the same figures.
    expect(page.locator("#q-recommend").locator("..")).to_contain_text("Net Promoter Score")
    screenshot(page, "survey-results")
    # Filtering draws the charts again for the chosen submissions.
    page.locator("#id_channel").select_option("website")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator(".chart.chart-drawn")).to_have_count(4)


def test_results_page_without_answers_shows_empty_tables(manager_page, survey):
    Submission.objects.all().delete()
    page = manager_page
    page.goto(f"/forms/{survey.pk}/results/")
    expect(page.locator(".figure-value").first).to_have_text("0")
    expect(page.locator(".chart")).to_have_count(0)
