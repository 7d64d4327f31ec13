from django.urls import path

from reports import report_views

app_name = "reports"

urlpatterns = [
    path("", report_views.index, name="index"),
    path("new/", report_views.create, name="create"),
    path("<uuid:pk>/", report_views.detail, name="detail"),
    path("<uuid:pk>/edit/", report_views.edit, name="edit"),
    path("<uuid:pk>/share/", report_views.share, name="share"),
    path("<uuid:pk>/delete/", report_views.delete, name="delete"),
    path("<uuid:pk>/export/", report_views.export, name="export"),
    path("<uuid:pk>/generate/", report_views.generate, name="generate"),
]
