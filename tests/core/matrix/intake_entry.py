"""Survey results (staff with intake.view_form), quick entry (intake.add_submission and
customers.add_customer) and forms filled on a customer's behalf (changing that customer)."""

import importlib

from django.utils import timezone

from tests.core.matrix import CHANGE_CUSTOMER, OK, PUBLIC, both, every, get

SEE_RESULTS = every(OK, viewer=403, auditor=403)
QUICK_ENTRY = every(OK, viewer=403, auditor=403)

RULES = {
    "intake:form_results": get(SEE_RESULTS),
    "intake:form_results_export": get(SEE_RESULTS),
    # An empty POST is shown the form again with its errors (400).
    "intake:quick_entry": both(QUICK_ENTRY),
    # The service worker script holds no data; a browser fetches it on its own schedule.
    "intake:quick_entry_worker": get(PUBLIC),
    "intake:fill_choose": get(CHANGE_CUSTOMER),
    "intake:fill_for_customer": both(CHANGE_CUSTOMER),
}


def make_objects(objects, users):
    from django.apps import apps

    from intake.models import Form, FormField

    migration = importlib.import_module("intake.migrations.0002_quick_entry_form")
    migration.create_quick_entry_form(apps)
    survey = Form.objects.create(
        kind=Form.Kind.SURVEY,
        slug="matrix-survey",
        title="满意度调查",
        published_at=timezone.now(),
    )
    FormField.objects.create(form=survey, key="score", type="rating", label="评分", position=1)
    FormField.objects.create(form=survey, key="comment", type="text", label="意见", position=2)
    return {"survey": survey}


def url_kwargs(name, objects):
    survey = objects["survey"]
    if name in ("intake:form_results", "intake:form_results_export"):
        return {"pk": survey.pk}
    if name == "intake:fill_for_customer":
        return {"pk": objects["customer"].pk, "slug": survey.slug}
    return None
