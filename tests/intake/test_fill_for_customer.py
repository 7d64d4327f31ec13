"""Staff filling in a form or survey on a customer's behalf (a paper questionnaire typed in)."""

import re
import uuid

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils import timezone

from intake.models import Form, FormField, Submission

pytestmark = pytest.mark.django_db


@pytest.fixture
def survey(db):
    form = Form.objects.create(
        kind=Form.Kind.SURVEY,
        slug="after-visit",
        title="到店满意度",
        title_en="After your visit",
        published_at=timezone.now(),
    )
    FormField.objects.create(
        form=form,
        key="score",
        type=FormField.Type.RATING,
        label="评分",
        label_en="Score",
        required=True,
        position=1,
    )
    FormField.objects.create(
        form=form,
        key="comment",
        type=FormField.Type.LONG_TEXT,
        label="意见",
        label_en="Comment",
        position=2,
    )
    return form


def fill_url(customer, form):
    return reverse("intake:fill_for_customer", args=[customer.pk, form.slug])


def answers(**values):
    return {
        "entry-channel": "phone",
        "entry-event": "",
        "entry-client_key": str(uuid.uuid4()),
        "score": "4",
        "comment": "店员很热情",
        **values,
    }


def test_customer_page_offers_to_fill_in_a_form(staff_client, customer, english):
    page = staff_client.get(customer.get_absolute_url()).content.decode()
    assert reverse("intake:fill_choose", args=[customer.pk]) in page
    assert "Fill in a form" in page


def test_viewer_is_not_offered_to_fill_in_a_form(client, viewer, customer):
    client.force_login(viewer)
    page = client.get(customer.get_absolute_url()).content.decode()
    assert reverse("intake:fill_choose", args=[customer.pk]) not in page


def test_choosing_lists_published_forms_only(staff_client, customer, survey):
    Form.objects.create(slug="draft", title="草稿")
    response = staff_client.get(reverse("intake:fill_choose", args=[customer.pk]))
    assert list(response.context["forms"]) == [survey]
    assert fill_url(customer, survey) in response.content.decode()


def test_form_opens_empty_with_the_channel_to_choose(staff_client, customer, survey):
    response = staff_client.get(fill_url(customer, survey))
    assert response.status_code == 200
    assert response.context["answers"]["score"].value() is None
    channels = [value for value, _label in response.context["entry"].fields["channel"].choices]
    assert channels == ["store", "expo", "phone", "other"]


def test_the_browser_neither_fills_in_nor_keeps_the_customers_answers(
    staff_client, customer, survey
):
    page = staff_client.get(fill_url(customer, survey)).content.decode()
    assert re.search(r'<textarea[^>]*name="comment"[^>]*autocomplete="off"', page) or re.search(
        r'<textarea[^>]*autocomplete="off"[^>]*name="comment"', page
    )


def test_answers_are_saved_for_the_customer(
    staff_client, staff, customer, survey, django_capture_on_commit_callbacks, english
):
    data = answers()
    with django_capture_on_commit_callbacks() as callbacks:
        response = staff_client.post(fill_url(customer, survey), data)
    assert response.status_code == 302
    assert response["Location"] == customer.get_absolute_url()
    submission = Submission.objects.get()
    assert submission.customer == customer  # set before processing starts
    assert submission.entered_by == staff
    assert submission.channel == "phone"
    assert submission.state == Submission.State.RECEIVED
    assert submission.answers == {"score": 4}
    assert submission.private_answers == {"comment": "店员很热情"}
    assert str(submission.client_key) == data["entry-client_key"]
    assert len(callbacks) == 1
    assert "were saved for 张伟" in str(list(get_messages(response.wsgi_request))[0])


def test_the_same_answers_sent_twice_are_saved_once(staff_client, customer, survey):
    data = answers()
    staff_client.post(fill_url(customer, survey), data)
    response = staff_client.post(fill_url(customer, survey), data)
    assert response.status_code == 302
    assert Submission.objects.count() == 1


def test_invalid_answers_are_shown_again_and_nothing_is_saved(
    staff_client, customer, survey, english
):
    response = staff_client.post(fill_url(customer, survey), answers(score="9"))
    assert response.status_code == 400
    assert "Select a valid choice" in response.content.decode()
    assert "店员很热情" in response.content.decode()
    assert not Submission.objects.exists()


def test_an_unknown_channel_is_an_error(staff_client, customer, survey):
    response = staff_client.post(fill_url(customer, survey), answers(**{"entry-channel": "web"}))
    assert response.status_code == 400
    assert not Submission.objects.exists()


def test_unpublished_form_is_404(staff_client, customer, survey):
    survey.published_at = None
    survey.save()
    assert staff_client.get(fill_url(customer, survey)).status_code == 404


def test_wrong_method_is_refused(staff_client, customer, survey):
    assert staff_client.put(fill_url(customer, survey)).status_code == 405
    assert staff_client.post(reverse("intake:fill_choose", args=[customer.pk])).status_code == 405


def test_staff_of_another_team_get_404(client, staff2, customer, survey):
    client.force_login(staff2)
    assert client.get(fill_url(customer, survey)).status_code == 404
    assert client.post(fill_url(customer, survey), answers()).status_code == 404
    assert client.get(reverse("intake:fill_choose", args=[customer.pk])).status_code == 404
    assert not Submission.objects.exists()


def test_viewer_gets_403(client, viewer, customer, survey):
    client.force_login(viewer)
    assert client.get(fill_url(customer, survey)).status_code == 403
    assert client.post(fill_url(customer, survey), answers()).status_code == 403
    assert not Submission.objects.exists()


def test_unknown_customer_is_404(staff_client, survey):
    url = reverse("intake:fill_for_customer", args=[uuid.uuid4(), survey.slug])
    assert staff_client.get(url).status_code == 404
