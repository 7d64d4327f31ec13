"""The form behind quick entry in stores and at expos.

It is an ordinary form (never published) so that administrators can change its questions in the
form builder; the quick-entry page finds it by its address.
"""

from django.db import migrations

SLUG = "quick-entry"

INTERESTS = [
    {"value": "new_products", "label": "新品", "label_en": "New products"},
    {"value": "offers", "label": "优惠活动", "label_en": "Offers"},
    {"value": "partnership", "label": "合作", "label_en": "Partnership"},
    {"value": "after_sales", "label": "售后服务", "label_en": "After-sales service"},
    {"value": "events", "label": "门店活动", "label_en": "Store events"},
]

# (key, type, label, English label, required, choices, saved to)
FIELDS = [
    ("name", "text", "姓名", "Name", True, [], "customer:display_name"),
    ("phone", "phone", "手机号", "Mobile phone", False, [], "customer:phone"),
    ("email", "email", "邮箱", "Email", False, [], "customer:email"),
    ("company", "text", "公司", "Company", False, [], "customer:company"),
    ("interests", "multi_choice", "感兴趣的内容", "Interests", False, INTERESTS, ""),
    ("notes", "long_text", "备注", "Notes", False, [], "customer:notes"),
    (
        "marketing_consent",
        "consent",
        "我同意接收产品和活动信息。",
        "I agree to receive news about products and events.",
        False,
        [],
        "consent:marketing_email",
    ),
]


def create_quick_entry_form(apps, schema_editor=None):
    """Create the quick-entry form with its questions, unless a form has its address already."""
    Form = apps.get_model("intake", "Form")
    FormField = apps.get_model("intake", "FormField")
    form, created = Form.objects.get_or_create(
        slug=SLUG,
        defaults={
            "kind": "form",
            "title": "快速录入",
            "title_en": "Quick entry",
            "description": "门店和展会现场录入客户。",
            "description_en": "Customers met in stores and at expos.",
            "source": "store",
        },
    )
    if not created:
        return form
    FormField.objects.bulk_create(
        FormField(
            form=form,
            key=key,
            type=type_,
            label=label,
            label_en=label_en,
            required=required,
            choices=choices,
            target=target,
            position=position,
        )
        for position, (key, type_, label, label_en, required, choices, target) in enumerate(FIELDS)
    )
    return form


def remove_quick_entry_form(apps, schema_editor):
    """Remove the form again, unless entries were made with it (those are kept)."""
    Form = apps.get_model("intake", "Form")
    Submission = apps.get_model("intake", "Submission")
    form = Form.objects.filter(slug=SLUG).first()
    if form is not None and not Submission.objects.filter(form=form).exists():
        form.fields.all().delete()
        form.delete()


class Migration(migrations.Migration):
    dependencies = [
        ("intake", "0001_forms_and_submissions"),
    ]

    operations = [
        migrations.RunPython(create_quick_entry_form, remove_quick_entry_form),
    ]
