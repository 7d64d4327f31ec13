from django.urls import path

from customers import import_views as views

app_name = "imports"

urlpatterns = [
    path("", views.import_list, name="list"),
    path("new/", views.import_upload, name="upload"),
    path("<uuid:pk>/", views.import_detail, name="detail"),
    path("<uuid:pk>/columns/", views.import_mapping, name="mapping"),
    path("<uuid:pk>/check/", views.import_check, name="check"),
    path("<uuid:pk>/run/", views.import_run, name="run"),
    path("<uuid:pk>/problems.csv", views.import_report, name="report"),
    path("<uuid:pk>/revert/", views.import_revert, name="revert"),
]
