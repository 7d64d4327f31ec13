"""Finding likely duplicate customers: the scan, the finder's page and dismissing pairs."""

import time

import pytest
from django.test import Client
from django.urls import reverse

from accounts import roles
from customers import duplicates
from customers.models import Customer, DuplicateCandidate, DuplicateDismissal, DuplicateScan
from tests.conftest import make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def team_customer(make_customer, staff, teams):
    """make_customer for the first team (the one `manager` manages), owned by `staff`."""

    def make(display_name, **fields):
        return make_customer(display_name, owner=staff, team=teams[0], **fields)

    return make


def pair(x, y):
    return DuplicateCandidate.objects.of(x, y).first()


def test_similar_chinese_names_are_found_by_pinyin(team_customer):
    zhang = team_customer("张伟", company="上海华东贸易有限公司", city="上海")
    homophone = team_customer("章伟", company="上海华东贸易", city="上海")
    duplicates.refresh_candidates()
    found = pair(zhang, homophone)
    assert found is not None
    assert {"same_pinyin", "same_company", "same_city"} <= set(found.reasons)
    assert found.score >= 80


def test_chinese_name_typed_in_pinyin_meets_the_characters(team_customer):
    chinese = team_customer("张伟", city="上海", district="浦东新区")
    latin = team_customer("Wei Zhang", city="上海", district="浦东新区")
    duplicates.refresh_candidates()
    assert set(pair(chinese, latin).reasons) == {"same_pinyin", "same_city", "same_district"}


def test_similar_english_names_are_found_by_trigram(team_customer):
    jonathan = team_customer("Jonathan Smithers", company="Acme Trading Ltd.")
    jonathon = team_customer("Jonathon Smithers", company="ACME Trading")
    duplicates.refresh_candidates()
    found = pair(jonathan, jonathon)
    assert found.reasons == ["similar_name", "same_company"]


def test_same_phone_ending_and_similar_name_are_found(team_customer):
    first = team_customer("Katherine Lee", phone="+8613800138000")
    second = team_customer("Katharine Lee", phone="+8613912348000")
    duplicates.refresh_candidates()
    assert "same_phone_ending" in pair(first, second).reasons


def test_similar_names_in_the_same_city_are_found(team_customer):
    first = team_customer("Alexandra Petrova", city="北京")
    second = team_customer("Alexandra Petrowa", city="北京")
    duplicates.refresh_candidates()
    assert set(pair(first, second).reasons) == {"similar_name", "same_city"}


def test_unrelated_customers_are_not_paired(team_customer):
    team_customer("王芳", company="北京星光科技", city="北京", phone="+8613900139000")
    team_customer("李娜", company="广州南方物流", city="广州", phone="+8613700137000")
    # The same city alone, or the same name alone, is not enough.
    team_customer("李娜娜", city="北京")
    team_customer("王芳", city="深圳")
    team_customer("John Smith", company="Acme")
    team_customer("Mary Jones", company="Acme")
    assert duplicates.refresh_candidates() == 0


def test_common_names_in_a_big_block_are_not_compared(team_customer, settings):
    settings.DUPLICATE_BLOCK_LIMIT = 2
    for _number in range(3):
        team_customer("王伟", city="上海")
    duplicates.refresh_candidates()
    assert not DuplicateCandidate.objects.exists()


def test_a_second_scan_keeps_pairs_still_found_and_drops_the_others(team_customer):
    zhang = team_customer("张伟", company="华东贸易")
    other = team_customer("张伟", company="华东贸易")
    third = team_customer("Anna Kowalska", company="Nordic")
    fourth = team_customer("Anna Kowalski", company="Nordic")
    duplicates.refresh_candidates()
    kept = pair(zhang, other)
    Customer.objects.filter(pk=fourth.pk).update(company="Elsewhere")
    duplicates.refresh_candidates()
    assert pair(zhang, other).pk == kept.pk
    assert pair(third, fourth) is None


def test_dismissed_pairs_stay_hidden(team_customer, manager_client):
    zhang = team_customer("张伟", company="华东贸易")
    other = team_customer("张伟", company="华东贸易")
    duplicates.refresh_candidates()
    url = reverse("duplicates:dismiss", args=[zhang.pk, other.pk])
    response = manager_client.post(url)
    assert response.status_code == 302
    assert pair(zhang, other) is None
    assert DuplicateDismissal.objects.of(zhang, other).exists()
    duplicates.refresh_candidates()
    assert pair(zhang, other) is None
    assert manager_client.get(reverse("duplicates:list")).context["page"].items == []


def test_dismiss_refuses_get(team_customer, manager_client):
    zhang = team_customer("张伟")
    other = team_customer("张伟")
    url = reverse("duplicates:dismiss", args=[zhang.pk, other.pk])
    assert manager_client.get(url).status_code == 405


def test_dismiss_is_not_for_viewers_or_other_teams(team_customer, viewer, teams, verified_login):
    zhang = team_customer("张伟")
    other = team_customer("张伟")
    url = reverse("duplicates:dismiss", args=[zhang.pk, other.pk])
    client = Client()
    client.force_login(viewer)
    assert client.post(url).status_code == 403
    elsewhere = make_user("manager2", role=roles.MANAGER, teams=[teams[1]])
    assert verified_login(Client(), elsewhere).post(url).status_code == 404
    assert not DuplicateDismissal.objects.exists()


def test_finder_lists_pairs_with_score_and_reasons(team_customer, manager_client, english):
    zhang = team_customer("张伟", company="华东贸易")
    other = team_customer("张伟", company="华东贸易")
    duplicates.refresh_candidates()
    response = manager_client.get(reverse("duplicates:list"))
    assert response.status_code == 200
    page = response.text
    assert page.count("张伟") >= 2
    assert "Same name" in page and "Same company" in page
    assert '<span class="score"' in page
    found = pair(zhang, other)
    assert reverse("duplicates:merge", args=[found.customer_a_id, found.customer_b_id]) in page


def test_finder_pages_by_keyset(team_customer, manager_client, monkeypatch):
    from customers import duplicate_views

    monkeypatch.setattr(duplicate_views, "PAGE_SIZE", 2)
    for name in ("张伟", "李娜", "王芳"):
        team_customer(name, company="华东贸易")
        team_customer(name, company="华东贸易")
    duplicates.refresh_candidates()
    first = manager_client.get(reverse("duplicates:list"))
    page = first.context["page"]
    assert len(page.items) == 2 and page.next_cursor
    second = manager_client.get(reverse("duplicates:list"), {"after": page.next_cursor})
    items = second.context["page"].items
    assert len(items) == 1
    assert {p.pk for p in page.items}.isdisjoint({p.pk for p in items})
    assert manager_client.get(reverse("duplicates:list"), {"after": "bogus"}).status_code == 400


def test_finder_filters_by_reason_and_score(team_customer, manager_client):
    team_customer("张伟", company="华东贸易")
    team_customer("张伟", company="华东贸易")
    team_customer("Katherine Lee", phone="+8613800138000")
    team_customer("Katharine Lee", phone="+8613912348000")
    duplicates.refresh_candidates()
    response = manager_client.get(reverse("duplicates:list"), {"reason": "same_phone_ending"})
    assert [set(p.reasons) for p in response.context["page"].items] == [
        {"similar_name", "same_phone_ending"}
    ]
    response = manager_client.get(reverse("duplicates:list"), {"min_score": "101"})
    assert response.status_code == 400
    assert "field-error" in response.text


def test_finder_shows_only_pairs_of_customers_the_user_may_change(
    make_customer, teams, staff, staff2, manager_client, admin_client
):
    ours = [make_customer("张伟", company="华东", owner=staff, team=teams[0]) for _ in range(2)]
    theirs = [make_customer("李娜", company="北方", owner=staff2, team=teams[1]) for _ in range(2)]
    mixed = make_customer("张伟", company="华东", owner=staff2, team=teams[1])
    duplicates.refresh_candidates()
    assert DuplicateCandidate.objects.count() == 4
    shown = {p.pk for p in manager_client.get(reverse("duplicates:list")).context["page"].items}
    assert shown == {pair(*ours).pk}
    assert pair(*theirs).pk not in shown and pair(ours[0], mixed).pk not in shown
    every = admin_client.get(reverse("duplicates:list")).context["page"].items
    assert len(every) == 4


def test_finder_of_one_customer(team_customer, manager_client):
    zhang = team_customer("张伟", company="华东贸易")
    team_customer("张伟", company="华东贸易")
    team_customer("李娜", company="华东贸易")
    team_customer("李娜", company="华东贸易")
    duplicates.refresh_candidates()
    response = manager_client.get(reverse("duplicates:list"), {"customer": zhang.pk})
    assert len(response.context["page"].items) == 1
    assert manager_client.get(reverse("duplicates:list"), {"customer": "x"}).status_code == 404


def test_staff_and_viewers_cannot_open_the_finder(staff_client, viewer):
    assert staff_client.get(reverse("duplicates:list")).status_code == 403
    client = Client()
    client.force_login(viewer)
    assert client.get(reverse("duplicates:list")).status_code == 403
    assert client.post(reverse("duplicates:refresh")).status_code == 403


def test_customer_page_offers_duplicates_to_those_who_merge(
    team_customer, manager_client, staff_client, english
):
    zhang = team_customer("张伟", company="华东贸易")
    team_customer("张伟", company="华东贸易")
    duplicates.refresh_candidates()
    page = manager_client.get(zhang.get_absolute_url()).text
    assert "Possible duplicates (1)" in page
    assert reverse("duplicates:merge_with", args=[zhang.pk]) in page
    page = staff_client.get(zhang.get_absolute_url()).text
    assert reverse("duplicates:merge_with", args=[zhang.pk]) not in page
    assert reverse("duplicates:list") not in page


def test_customer_list_links_the_finder_for_those_who_merge(manager_client, staff_client):
    assert reverse("duplicates:list") in manager_client.get(reverse("customers:list")).text
    assert reverse("duplicates:list") not in staff_client.get(reverse("customers:list")).text


def test_merge_with_finds_other_customers_by_search(team_customer, manager_client, make_customer):
    zhang = team_customer("张伟")
    other = team_customer("张伟伟")
    hidden = make_customer("张伟华")  # no owner, no team: not the manager's to change
    url = reverse("duplicates:merge_with", args=[zhang.pk])
    response = manager_client.get(url, {"q": "张伟"})
    assert list(response.context["results"]) == [other]
    assert hidden.display_name not in response.text


def test_refresh_runs_in_the_worker_and_shows_progress(
    celery_worker, team_customer, manager_client
):
    zhang = team_customer("张伟", company="华东贸易")
    other = team_customer("张伟", company="华东贸易")
    response = manager_client.post(reverse("duplicates:refresh"))
    scan = DuplicateScan.objects.get()
    assert response["Location"] == scan.get_absolute_url()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        scan.refresh_from_db()
        if scan.finished:
            break
        time.sleep(0.2)
    assert scan.state == DuplicateScan.State.DONE
    assert scan.percent == 100
    assert pair(zhang, other) is not None
    progress = manager_client.get(scan.get_absolute_url(), headers={"HX-Request": "true"})
    assert 'value="100"' in progress.text and "hx-trigger" not in progress.text


def test_a_second_refresh_while_one_waits_reuses_it(team_customer, manager_client):
    manager_client.post(reverse("duplicates:refresh"))
    manager_client.post(reverse("duplicates:refresh"))
    assert DuplicateScan.objects.count() == 1


def test_refresh_refuses_get(manager_client):
    assert manager_client.get(reverse("duplicates:refresh")).status_code == 405


def test_nightly_task_makes_its_own_scan(team_customer):
    from customers.tasks import refresh_duplicate_candidates

    team_customer("张伟", company="华东贸易")
    team_customer("张伟", company="华东贸易")
    refresh_duplicate_candidates.apply()
    scan = DuplicateScan.objects.get()
    assert scan.state == DuplicateScan.State.DONE and scan.requested_by is None
    assert DuplicateCandidate.objects.count() == 1


def test_pairs_below_the_minimum_score_are_not_kept(team_customer, settings):
    team_customer("张伟", company="华东贸易")
    team_customer("张伟", company="华东贸易")
    settings.DUPLICATE_MIN_SCORE = 101
    assert duplicates.refresh_candidates() == 0


def test_operators_can_run_the_scan_from_the_command_line(team_customer):
    from io import StringIO

    from django.core.management import call_command

    team_customer("张伟", company="华东贸易")
    team_customer("张伟", company="华东贸易")
    out = StringIO()
    call_command("find_duplicates", stdout=out)
    assert DuplicateCandidate.objects.count() == 1
    assert DuplicateScan.objects.get().state == DuplicateScan.State.DONE
    assert "1" in out.getvalue()
