from django.contrib.auth import views as auth_views
from django.urls import path

from accounts import views

app_name = "accounts"

urlpatterns = [
    path("login/", views.login, name="login"),
    path("login/code/", views.login_code, name="login_code"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("security/", views.security_settings, name="security"),
    path("security/password/", views.password_change, name="password_change"),
    path("security/two-factor/", views.two_factor_setup, name="two_factor_setup"),
    path("security/two-factor/off/", views.two_factor_disable, name="two_factor_disable"),
    path("security/recovery-codes/", views.recovery_codes, name="recovery_codes"),
    path("language/", views.set_language, name="set_language"),
]
