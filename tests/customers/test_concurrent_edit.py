"""Two people editing one customer: the later save is refused instead of overwriting."""

import pytest

from customers.models import Customer

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]


def edit_data(response, **changes):
    """What a browser would post back from the edit form in `response`, with `changes`."""
    form = response.context["form"]
    data = {}
    for bound in form:
        value = bound.value()
        if value is None:
            continue
        if isinstance(value, list):
            data[bound.html_name] = [str(v) for v in value]
        else:
            data[bound.html_name] = str(value)
    data["tags"] = ", ".join(form.instance.tags)
    data.update(changes)
    return data


def test_later_of_two_concurrent_edits_is_refused(staff_client, manager_client, customer):
    url = f"/customers/{customer.pk}/edit/"
    first_form = manager_client.get(url)
    second_form = staff_client.get(url)
    assert first_form.context["form"]["version"].value() == 1

    first = manager_client.post(url, edit_data(first_form, company="First Company"))
    assert first.status_code == 302

    second = staff_client.post(url, edit_data(second_form, company="Second Company"))
    assert second.status_code == 409
    content = second.content.decode()
    assert "Mei Lin changed this customer after you opened it." in content
    assert "Your changes were not saved" in content
    # The refused input is still in the form, so it can be made again after a reload.
    assert 'value="Second Company"' in content

    customer.refresh_from_db()
    assert customer.company == "First Company"
    assert customer.version == 2
    assert customer.updated_by.username == "manager"


def test_edits_made_one_after_another_both_succeed(staff_client, customer):
    url = f"/customers/{customer.pk}/edit/"
    assert staff_client.post(url, edit_data(staff_client.get(url), city="杭州")).status_code == 302
    assert (
        staff_client.post(url, edit_data(staff_client.get(url), district="西湖区")).status_code
        == 302
    )
    customer.refresh_from_db()
    assert (customer.city, customer.district, customer.version) == ("杭州", "西湖区", 3)


def test_a_bulk_change_after_the_form_was_opened_also_refuses_the_edit(
    staff_client, manager_client, customer
):
    url = f"/customers/{customer.pk}/edit/"
    opened = staff_client.get(url)
    manager_client.post(
        "/customers/bulk/",
        {
            "action": "set_status",
            "status": "churned",
            "scope": "selected",
            "selected": [str(customer.pk)],
            "confirmed": "True",
        },
    )
    response = staff_client.post(url, edit_data(opened, status="active"))
    assert response.status_code == 409
    customer.refresh_from_db()
    assert customer.status == "churned"


def test_save_if_unchanged_refuses_a_stale_version(customer, staff):
    stale = Customer.objects.get(pk=customer.pk)
    customer.company = "Newer"
    assert customer.save_if_unchanged(expected_version=1, user=staff)
    stale.company = "Older"
    assert not stale.save_if_unchanged(expected_version=1, user=staff)
    customer.refresh_from_db()
    assert (customer.company, customer.version) == ("Newer", 2)


def test_edit_without_the_version_it_was_opened_at_is_refused(staff_client, customer):
    response = staff_client.post(
        f"/customers/{customer.pk}/edit/",
        {"display_name": "改名", "source": "store", "status": "active", "country": "CN"},
    )
    assert response.status_code == 200
    assert "This form is out of date" in response.content.decode()
    customer.refresh_from_db()
    assert (customer.display_name, customer.version) == ("张伟", 1)
