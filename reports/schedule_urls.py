from django.urls import path

from reports import schedule_views as views

app_name = "schedules"

urlpatterns = [
    path("", views.schedule_list, name="list"),
    path("new/", views.schedule_create, name="create"),
    path("<uuid:pk>/", views.schedule_detail, name="detail"),
    path("<uuid:pk>/edit/", views.schedule_edit, name="edit"),
    path("<uuid:pk>/pause/", views.schedule_pause, name="pause"),
    path("<uuid:pk>/delete/", views.schedule_delete, name="delete"),
]
