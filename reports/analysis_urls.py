from django.urls import path

from reports import analysis_views

app_name = "analysis"

urlpatterns = [
    path("", analysis_views.pivot, name="pivot"),
    path("export/", analysis_views.export, name="export"),
    path("save/", analysis_views.save, name="save"),
]
