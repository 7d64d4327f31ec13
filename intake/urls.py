from django.urls import path  # noqa: F401

from intake import (
    builder_views,
    entry_views,
    public_views,
    results_views,
    review_views,
    verify_views,
)

app_name = "intake"

urlpatterns = [
    # Public pages: forms and surveys at /f/<slug>/, and their verification.
    path("f/<slug:slug>/", public_views.public_form, name="public_form"),
    path("f/<slug:slug>/thanks/", public_views.form_thanks, name="form_thanks"),
    path("f/<slug:slug>/verify/<uuid:pk>/", verify_views.verify, name="verify"),
    path(
        "f/<slug:slug>/verify/<uuid:pk>/resend/",
        verify_views.verify_resend,
        name="verify_resend",
    ),
    path("verify/<str:token>/", verify_views.verify_link, name="verify_link"),
    # Staff: the form builder and surveys' results.
    path("forms/", builder_views.form_list, name="form_list"),
    path("forms/new/", builder_views.form_create, name="form_create"),
    path("forms/<uuid:pk>/", builder_views.form_detail, name="form_detail"),
    path("forms/<uuid:pk>/settings/", builder_views.form_edit, name="form_edit"),
    path("forms/<uuid:pk>/delete/", builder_views.form_delete, name="form_delete"),
    path("forms/<uuid:pk>/publish/", builder_views.form_publish, name="form_publish"),
    path("forms/<uuid:pk>/unpublish/", builder_views.form_unpublish, name="form_unpublish"),
    path("forms/<uuid:pk>/preview/", builder_views.form_preview, name="form_preview"),
    path("forms/<uuid:pk>/qr.<str:image_format>", builder_views.form_qr, name="form_qr"),
    path("forms/<uuid:pk>/questions/new/", builder_views.field_create, name="field_create"),
    path(
        "forms/<uuid:pk>/questions/<uuid:field_pk>/",
        builder_views.field_edit,
        name="field_edit",
    ),
    path(
        "forms/<uuid:pk>/questions/<uuid:field_pk>/delete/",
        builder_views.field_delete,
        name="field_delete",
    ),
    path(
        "forms/<uuid:pk>/questions/<uuid:field_pk>/move/",
        builder_views.field_move,
        name="field_move",
    ),
    path("forms/<uuid:pk>/results/", results_views.form_results, name="form_results"),
    path(
        "forms/<uuid:pk>/results/export/",
        results_views.form_results_export,
        name="form_results_export",
    ),
    # Staff: submitted changes to review.
    path("submissions/review/", review_views.review_list, name="review"),
    path(
        "submissions/review/changes/<uuid:pk>/",
        review_views.review_change,
        name="review_change",
    ),
    path(
        "submissions/review/<uuid:pk>/",
        review_views.review_submission,
        name="review_submission",
    ),
    # Staff: quick entry in stores and at expos, and forms filled on a customer's behalf.
    path("entry/", entry_views.quick_entry, name="quick_entry"),
    path("entry/sw.js", entry_views.quick_entry_worker, name="quick_entry_worker"),
    path("customers/<uuid:pk>/forms/", entry_views.fill_choose, name="fill_choose"),
    path(
        "customers/<uuid:pk>/forms/<slug:slug>/",
        entry_views.fill_for_customer,
        name="fill_for_customer",
    ),
]
