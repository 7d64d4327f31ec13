"""Built forms for intake tests: `built_form(...)` makes any form, `contact_form` a typical one."""

import itertools

import pytest
from django.utils import timezone

from intake.models import Form, FormField

# The questions of a typical enquiry form, each saved to the customer.
CONTACT_FIELDS = [
    {
        "key": "name",
        "type": FormField.Type.TEXT,
        "label": "姓名",
        "label_en": "Name",
        "required": True,
        "target": "customer:display_name",
    },
    {
        "key": "phone",
        "type": FormField.Type.PHONE,
        "label": "手机号",
        "label_en": "Mobile phone",
        "target": "customer:phone",
    },
    {
        "key": "email",
        "type": FormField.Type.EMAIL,
        "label": "邮箱",
        "label_en": "Email",
        "target": "customer:email",
    },
    {
        "key": "marketing",
        "type": FormField.Type.CONSENT,
        "label": "我同意接收产品和活动信息。",
        "label_en": "I agree to receive news about products and events.",
        "target": "consent:marketing_email",
    },
]


_numbers = itertools.count(1)


def build_form(*fields, published=True, **values):
    """A Form with these questions: each a dict of FormField values (key and type at least;
    the label defaults to the key). Addresses are unique unless `slug` is given."""
    number = next(_numbers)
    values.setdefault("slug", f"test-form-{number}")
    values.setdefault("title", f"测试表单 {number}")
    values.setdefault("title_en", f"Test form {number}")
    form = Form.objects.create(published_at=timezone.now() if published else None, **values)
    FormField.objects.bulk_create(
        FormField(form=form, position=position, **{"label": spec["key"], **spec})
        for position, spec in enumerate(fields, start=1)
    )
    return form


@pytest.fixture
def built_form(db):
    """built_form(*fields, published=True, **form_values) -> a Form; see build_form."""
    return build_form


def build_contact_form(**values):
    """A published enquiry form: name (required), mobile, email and a marketing consent."""
    values = {"slug": "enquiry", "title": "产品咨询", "title_en": "Product enquiry", **values}
    return build_form(*CONTACT_FIELDS, **values)


@pytest.fixture
def contact_form(db):
    """A published enquiry form: name (required), mobile, email and a marketing consent."""
    return build_contact_form()
