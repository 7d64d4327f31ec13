from django.urls import path

from customers import access_export_views, archive_views, consent_views, erasure_views, views

app_name = "customers"

urlpatterns = [
    path("", views.customer_list, name="list"),
    path("new/", views.customer_create, name="create"),
    path("duplicates/", views.duplicate_hint, name="duplicates"),
    path("bulk/", views.bulk_action, name="bulk"),
    path("bulk/<uuid:pk>/", views.bulk_progress, name="bulk_progress"),
    path("views/", views.saved_view_list, name="saved_views"),
    path("views/new/", views.saved_view_create, name="saved_view_create"),
    path("views/<uuid:pk>/rename/", views.saved_view_rename, name="saved_view_rename"),
    path("views/<uuid:pk>/delete/", views.saved_view_delete, name="saved_view_delete"),
    path("archive/<uuid:pk>/", archive_views.archived_detail, name="archived_detail"),
    path("archive/<uuid:pk>/restore/", archive_views.archived_restore, name="archived_restore"),
    path("archive/<uuid:pk>/erase/", erasure_views.archived_erase, name="archived_erase"),
    path("<uuid:pk>/", views.customer_detail, name="detail"),
    path("<uuid:pk>/edit/", views.customer_edit, name="edit"),
    path("<uuid:pk>/delete/", views.customer_delete, name="delete"),
    path("<uuid:pk>/erase/", erasure_views.customer_erase, name="erase"),
    path("<uuid:pk>/reveal/<str:field>/", views.customer_reveal, name="reveal"),
    path("<uuid:pk>/share/", views.customer_share, name="share"),
    path(
        "<uuid:pk>/share/<str:kind>/<int:share_pk>/withdraw/",
        views.customer_unshare,
        name="unshare",
    ),
    path("<uuid:pk>/interactions/new/", views.interaction_create, name="interaction_create"),
    path("<uuid:pk>/orders/new/", views.order_create, name="order_create"),
    path("<uuid:pk>/consents/new/", views.consent_create, name="consent_create"),
    path("<uuid:pk>/consents/change/", consent_views.consent_change, name="consent_change"),
    path(
        "<uuid:pk>/data-export/<str:fmt>/",
        access_export_views.customer_data_export,
        name="data_export",
    ),
]
