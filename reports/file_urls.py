from django.urls import path

from reports import file_views

app_name = "files"

urlpatterns = [
    path("", file_views.file_list, name="list"),
    path("export/customers/", file_views.export_customers, name="export_customers"),
    path("<uuid:pk>/", file_views.file_detail, name="detail"),
    path("<uuid:pk>/download/", file_views.file_download, name="download"),
    path("<uuid:pk>/retry/", file_views.file_retry, name="retry"),
    path("<uuid:pk>/delete/", file_views.file_delete, name="delete"),
]
