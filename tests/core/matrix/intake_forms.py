"""The form builder (intake.add/change/delete_form for administrators and managers, view_form
for staff) and the public forms anyone may fill."""

from django.utils import timezone

from tests.core.matrix import NOT_ALLOWED, OK, PERSONAS, PUBLIC, both, every, get, post

SEE_FORMS = every(403, admin=OK, manager=OK, staff=OK, staff2=OK)
BUILD_FORMS = every(403, admin=OK, manager=OK)

RULES = {
    "intake:form_list": get(SEE_FORMS),
    "intake:form_create": both(BUILD_FORMS),
    "intake:form_detail": get(SEE_FORMS),
    "intake:form_edit": both(BUILD_FORMS),
    "intake:form_delete": both(BUILD_FORMS),
    "intake:form_publish": post(BUILD_FORMS),
    "intake:form_unpublish": post(BUILD_FORMS),
    "intake:form_preview": get(SEE_FORMS),
    "intake:form_qr": get(SEE_FORMS),
    "intake:field_create": both(BUILD_FORMS),
    "intake:field_edit": both(BUILD_FORMS),
    "intake:field_delete": both(BUILD_FORMS),
    "intake:field_move": post(BUILD_FORMS),
    # A POST without the page's token is shown the form again (400).
    "intake:public_form": both(PUBLIC),
    "intake:form_thanks": {"GET": PUBLIC, "POST": dict.fromkeys(PERSONAS, NOT_ALLOWED)},
}


def make_objects(objects, users):
    from intake.models import Form, FormField

    form = Form.objects.create(
        slug="matrix-form", title="矩阵表单", published_at=timezone.now(), owner=users["manager"]
    )
    field = FormField.objects.create(form=form, key="name", label="姓名", position=1)
    return {"built_form": form, "form_field": field}


def url_kwargs(name, objects):
    form, field = objects["built_form"], objects["form_field"]
    if name in ("intake:public_form", "intake:form_thanks"):
        return {"slug": form.slug}
    if name == "intake:form_qr":
        return {"pk": form.pk, "image_format": "png"}
    if name in ("intake:field_edit", "intake:field_delete", "intake:field_move"):
        return {"pk": form.pk, "field_pk": field.pk}
    if name.startswith(("intake:form_", "intake:field_")) and name != "intake:form_list":
        return {"pk": form.pk} if name != "intake:form_create" else None
    return None
