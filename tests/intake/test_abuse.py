"""Public forms hold back forged, automated and oversized submissions without losing real ones."""

import logging
import socket
import threading

import pytest
from django.db import connection
from django.test import Client

from intake import ratelimit
from intake.models import Submission
from intake.public_views import HONEYPOT_FIELD, TOKEN_FIELD, form_token

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]


def answers(form, **values):
    return {TOKEN_FIELD: form_token(form), HONEYPOT_FIELD: "", **values}


def closed_port():
    """A local port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# Honeypot -----------------------------------------------------------------------------------


def test_a_filled_honeypot_is_thanked_but_nothing_is_stored(client, contact_form, caplog):
    data = {**answers(contact_form, name="Spam Bot"), HONEYPOT_FIELD: "https://spam.example"}
    with caplog.at_level(logging.INFO, logger="intake.public_views"):
        response = client.post("/f/enquiry/", data)
    # Exactly what a person gets, so the bot cannot tell.
    assert response.status_code == 302
    assert response["Location"] == "/f/enquiry/thanks/"
    assert not Submission.objects.exists()
    assert "Honeypot filled on form enquiry" in caplog.text


def test_the_honeypot_is_hidden_from_people(client, contact_form):
    content = client.get("/f/enquiry/").content.decode()
    assert '<div class="hp-field" aria-hidden="true">' in content
    assert f'name="{HONEYPOT_FIELD}" id="id{HONEYPOT_FIELD}" value="" tabindex="-1"' in content


# Cross-site requests ------------------------------------------------------------------------


def test_a_post_from_another_site_is_refused(client, contact_form):
    response = client.post(
        "/f/enquiry/",
        answers(contact_form, name="王芳"),
        HTTP_ORIGIN="https://evil.example",
    )
    assert response.status_code == 403
    assert not Submission.objects.exists()


def test_a_post_from_the_forms_own_page_is_accepted(client, contact_form):
    response = client.post(
        "/f/enquiry/", answers(contact_form, name="王芳"), HTTP_ORIGIN="http://testserver"
    )
    assert response.status_code == 302
    assert Submission.objects.count() == 1


def test_trusted_origins_are_accepted(client, contact_form, settings):
    settings.CSRF_TRUSTED_ORIGINS = ["https://forms.example.com"]
    response = client.post(
        "/f/enquiry/", answers(contact_form, name="王芳"), HTTP_ORIGIN="https://forms.example.com"
    )
    assert response.status_code == 302


def test_on_https_a_post_without_origin_needs_our_referer(client, contact_form, settings):
    settings.SECURE_SSL_REDIRECT = False
    data = answers(contact_form, name="王芳")
    foreign = client.post(
        "/f/enquiry/", data, secure=True, HTTP_REFERER="https://evil.example/page"
    )
    missing = client.post("/f/enquiry/", data, secure=True)
    assert (foreign.status_code, missing.status_code) == (403, 403)
    own = client.post(
        "/f/enquiry/", data, secure=True, HTTP_REFERER="https://testserver/f/enquiry/"
    )
    assert own.status_code == 302
    assert Submission.objects.count() == 1


# Rate limit ---------------------------------------------------------------------------------


def test_too_many_submissions_from_one_address_get_429(client, contact_form, settings):
    settings.INTAKE_SUBMISSIONS_PER_HOUR = 2
    for name in ("一", "二"):
        assert client.post("/f/enquiry/", answers(contact_form, name=name)).status_code == 302
    response = client.post("/f/enquiry/", answers(contact_form, name="三"))
    assert response.status_code == 429
    assert 3500 < int(response["Retry-After"]) <= 3600
    content = response.content.decode()
    assert "Too many forms were sent from your network" in content
    assert "try again in about 60 minutes" in content
    assert Submission.objects.count() == 2


def test_the_limit_is_per_address_and_over_all_forms(client, contact_form, built_form, settings):
    settings.INTAKE_SUBMISSIONS_PER_HOUR = 1
    other = built_form({"key": "q"})
    assert client.post("/f/enquiry/", answers(contact_form, name="一")).status_code == 302
    assert client.post(f"/f/{other.slug}/", answers(other, q="x")).status_code == 429
    elsewhere = client.post(f"/f/{other.slug}/", answers(other, q="x"), REMOTE_ADDR="203.0.113.9")
    assert elsewhere.status_code == 302


def test_answers_with_mistakes_do_not_count(client, contact_form, settings):
    settings.INTAKE_SUBMISSIONS_PER_HOUR = 1
    for _attempt in range(3):
        assert client.post("/f/enquiry/", answers(contact_form, name="")).status_code == 200
    assert client.post("/f/enquiry/", answers(contact_form, name="王芳")).status_code == 302


def test_honeypot_hits_count_against_the_limit(client, contact_form, settings):
    settings.INTAKE_SUBMISSIONS_PER_HOUR = 1
    client.post("/f/enquiry/", {**answers(contact_form, name="x"), HONEYPOT_FIELD: "spam"})
    assert client.post("/f/enquiry/", answers(contact_form, name="x")).status_code == 429


@pytest.mark.django_db(transaction=True)
def test_submissions_sent_all_at_once_cannot_pass_the_limit_together(contact_form, settings):
    settings.INTAKE_SUBMISSIONS_PER_HOUR = 2
    barrier = threading.Barrier(6)
    statuses = []

    def send(number):
        try:
            barrier.wait()
            data = answers(contact_form, name=f"客户{number}")
            statuses.append(Client().post("/f/enquiry/", data).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=[n]) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [302, 302, 429, 429, 429, 429]
    assert Submission.objects.count() == 2


def test_counting_says_when_the_limit_is_passed(settings):
    settings.INTAKE_SUBMISSIONS_PER_HOUR = 1
    assert ratelimit.count("198.51.100.7") is None
    assert 3590 < ratelimit.count("198.51.100.7") <= 3600


def test_ipv6_addresses_of_one_network_share_a_count(settings):
    settings.INTAKE_SUBMISSIONS_PER_HOUR = 1
    ratelimit.count("2001:db8:1:2::10")
    assert ratelimit.retry_after("2001:db8:1:2::99") is not None
    assert ratelimit.retry_after("2001:db8:1:3::10") is None


def test_submissions_are_accepted_while_redis_is_down(client, contact_form, settings, caplog):
    settings.INTAKE_SUBMISSIONS_PER_HOUR = 1
    settings.INTAKE_RATE_LIMIT_REDIS_URL = f"redis://127.0.0.1:{closed_port()}/0"
    with caplog.at_level(logging.WARNING, logger="intake.ratelimit"):
        for name in ("一", "二"):
            response = client.post("/f/enquiry/", answers(contact_form, name=name))
            assert response.status_code == 302
    assert Submission.objects.count() == 2
    assert "Redis is unreachable" in caplog.text
    # The other protections still hold.
    spam = {**answers(contact_form, name="x"), HONEYPOT_FIELD: "spam"}
    assert client.post("/f/enquiry/", spam).status_code == 302
    assert client.post("/f/enquiry/", {"name": "x"}).status_code == 400
    assert Submission.objects.count() == 2


# Size ---------------------------------------------------------------------------------------


def test_an_oversized_body_gets_413_and_nothing_is_stored(client, contact_form, settings):
    settings.INTAKE_MAX_BODY_BYTES = 1024
    response = client.post("/f/enquiry/", answers(contact_form, name="王" * 2000))
    assert response.status_code == 413
    assert "larger than the 1 KB this form accepts" in response.content.decode()
    assert not Submission.objects.exists()


def test_a_body_within_the_limit_is_accepted(client, contact_form, settings):
    settings.INTAKE_MAX_BODY_BYTES = 64 * 1024
    response = client.post("/f/enquiry/", answers(contact_form, name="王" * 100))
    assert response.status_code == 302


def test_answers_longer_than_a_question_allows_are_refused_beside_it(client, contact_form):
    response = client.post("/f/enquiry/", answers(contact_form, name="x" * 501))
    assert response.status_code == 200
    assert "Ensure this value has at most" in response.content.decode()
    assert not Submission.objects.exists()
