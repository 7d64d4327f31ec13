from django.urls import path

from reports import analytics_views as views

app_name = "analytics"

urlpatterns = [
    path("", views.customer_analytics, name="customers"),
    path("refresh/", views.refresh_start, name="refresh_start"),
    path("refresh/<uuid:pk>/", views.refresh_progress, name="refresh"),
]
