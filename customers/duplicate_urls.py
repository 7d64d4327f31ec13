from django.urls import path

from customers import duplicate_views as views

app_name = "duplicates"

urlpatterns = [
    path("", views.candidate_list, name="list"),
    path("scans/", views.scan_start, name="refresh"),
    path("scans/<uuid:pk>/", views.scan_progress, name="scan"),
    path("<uuid:pk>/<uuid:other>/dismiss/", views.dismiss, name="dismiss"),
    path("<uuid:pk>/merge/", views.merge_with, name="merge_with"),
    path("<uuid:pk>/<uuid:other>/merge/", views.merge, name="merge"),
    path("merges/<uuid:pk>/", views.merge_detail, name="merge_detail"),
    path("merges/<uuid:pk>/undo/", views.merge_undo, name="undo"),
]
