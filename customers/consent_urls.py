from django.urls import path

from customers import consent_views

app_name = "consents"

urlpatterns = [
    path("consents/<str:token>/", consent_views.manage, name="manage"),
    path("unsubscribe/<str:token>/", consent_views.one_click, name="one_click"),
]
