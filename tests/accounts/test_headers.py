"""Security headers, and the production settings that `check --deploy` vouches for."""

import base64
import json
import os
import ssl
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth.decorators import login_not_required
from django.http import HttpResponse
from django.urls import path
from django.views.decorators.cache import cache_control

from accounts.middleware import allow_framing

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]

BASE_DIR = Path(__file__).resolve().parents[2]


@login_not_required
def plain_view(request):
    return HttpResponse("<p>plain</p>")


@login_not_required
@allow_framing("https://shop.example.com")
def embeddable_view(request):
    return HttpResponse("<p>embeddable</p>")


@cache_control(private=True, max_age=60)
def cacheable_view(request):
    return HttpResponse("<p>cacheable</p>")


urlpatterns = [
    path("plain/", plain_view),
    path("embeddable/", embeddable_view),
    path("cacheable/", cacheable_view),
]


def directives(response):
    policy = response["Content-Security-Policy"]
    return {part.split()[0]: part.split()[1:] for part in policy.split("; ")}


def test_pages_send_a_content_security_policy_without_unsafe_inline(client):
    response = client.get("/accounts/login/")
    policy = directives(response)
    assert policy["default-src"] == ["'self'"]
    assert policy["script-src"][0] == "'self'"
    assert policy["style-src"] == ["'self'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["object-src"] == ["'none'"]
    assert "unsafe-inline" not in response["Content-Security-Policy"]


def test_pages_refuse_framing_and_sniffing_and_keep_referrers_on_site(client):
    response = client.get("/accounts/login/")
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"


def test_https_responses_carry_strict_transport_security(client, settings):
    settings.SECURE_HSTS_SECONDS = 31536000
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    settings.SECURE_HSTS_PRELOAD = True
    response = client.get("/accounts/login/", secure=True)
    assert response["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"


def test_signed_in_pages_are_not_stored_by_browsers_or_proxies(staff_client):
    response = staff_client.get("/customers/")
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    assert "private" in response["Cache-Control"]


def test_signed_in_fragments_and_redirects_are_not_stored_either(staff_client):
    response = staff_client.get("/customers/", headers={"HX-Request": "true"})
    assert "no-store" in response["Cache-Control"]
    assert "no-store" in staff_client.get("/").headers["Cache-Control"]


@pytest.mark.urls(__name__)
def test_a_view_that_chose_its_own_caching_keeps_it(staff_client):
    response = staff_client.get("/cacheable/")
    assert response["Cache-Control"] == "private, max-age=60"


@pytest.mark.urls(__name__)
def test_allow_framing_lets_only_the_named_sites_frame_a_view(client):
    response = client.get("/embeddable/")
    assert "X-Frame-Options" not in response
    policy = directives(response)
    assert policy["frame-ancestors"] == ["https://shop.example.com"]
    assert policy["default-src"] == ["'self'"], "the rest of the policy stays"

    plain = client.get("/plain/")
    assert plain["X-Frame-Options"] == "DENY"
    assert directives(plain)["frame-ancestors"] == ["'none'"]


def test_allow_framing_needs_a_source():
    with pytest.raises(TypeError):
        allow_framing()


# Production settings: checked in a fresh process, as settings are read once at start-up.


@pytest.fixture
def production_env(tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    signing_key = tmp_path / "audit-signing-key.pem"
    signing_key.write_bytes(
        Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    from accounts.backup_container import create_key_pair

    # Production holds the backup public key only.
    create_key_pair(tmp_path / "backup-private.pem", tmp_path / "backup-public.pem")
    (tmp_path / "backup-private.pem").unlink()
    # The browser tests lift Django's async safety check for their process; a server must not.
    environment = {k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"}
    return {
        **environment,
        "DEBUG": "0",
        "SECRET_KEY": base64.b64encode(os.urandom(48)).decode(),
        "ALLOWED_HOSTS": "cims.example.com",
        "AUDIT_SIGNING_KEY_FILE": str(signing_key),
        "BACKUP_PUBLIC_KEY_FILE": str(tmp_path / "backup-public.pem"),
        "FIELD_ENCRYPTION_KEYS": "1:" + base64.b64encode(os.urandom(32)).decode(),
        "BLIND_INDEX_KEY": base64.b64encode(os.urandom(32)).decode(),
        "CIMS_VAR_DIR": str(tmp_path / "var"),
    }


PRINT_SETTINGS = """
import json, django
django.setup()
from django.conf import settings as s
print(json.dumps({
    "database": s.DATABASES["default"]["OPTIONS"],
    "cache": s.CACHES["default"]["LOCATION"],
    "broker": s.CELERY_BROKER_URL,
    "broker_ssl": getattr(s, "CELERY_BROKER_USE_SSL", None),
    "ssl_redirect": s.SECURE_SSL_REDIRECT,
    "session_cookie_secure": s.SESSION_COOKIE_SECURE,
    "csrf_cookie_secure": s.CSRF_COOKIE_SECURE,
    "hsts": [s.SECURE_HSTS_SECONDS, s.SECURE_HSTS_INCLUDE_SUBDOMAINS, s.SECURE_HSTS_PRELOAD],
    "proxy_ssl_header": getattr(s, "SECURE_PROXY_SSL_HEADER", None),
}))
"""


def production_settings(env):
    result = subprocess.run(
        [sys.executable, "-c", PRINT_SETTINGS],
        cwd=BASE_DIR,
        env={**env, "DJANGO_SETTINGS_MODULE": "cims.settings"},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_check_deploy_reports_nothing_with_production_values(production_env):
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=BASE_DIR,
        env=production_env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_production_is_https_only(production_env):
    values = production_settings(production_env)
    assert values["ssl_redirect"] is True
    assert values["session_cookie_secure"] is True
    assert values["csrf_cookie_secure"] is True
    assert values["hsts"] == [31536000, True, True]
    assert values["proxy_ssl_header"] is None, "X-Forwarded-Proto is trusted only when asked"

    behind_proxy = production_settings({**production_env, "USE_X_FORWARDED_PROTO": "1"})
    assert behind_proxy["proxy_ssl_header"] == ["HTTP_X_FORWARDED_PROTO", "https"]


def test_tls_to_postgresql_and_redis_is_configured_by_the_addresses(production_env):
    values = production_settings(
        {
            **production_env,
            "DATABASE_URL": "postgres://cims:pw@db.example.com:5432/cims"
            "?sslmode=verify-full&sslrootcert=/etc/ssl/certs/db-ca.pem",
            "REDIS_URL": "rediss://:pw@redis.example.com:6380/0"
            "?ssl_cert_reqs=required&ssl_ca_certs=/etc/ssl/certs/redis-ca.pem",
        }
    )
    assert values["database"]["sslmode"] == "verify-full"
    assert values["database"]["sslrootcert"] == "/etc/ssl/certs/db-ca.pem"
    assert values["cache"].startswith("rediss://")
    assert values["broker"].startswith("rediss://")


def test_celery_checks_the_redis_certificate_even_without_ssl_cert_reqs(production_env):
    values = production_settings(
        {**production_env, "REDIS_URL": "rediss://:pw@redis.example.com:6380/0"}
    )
    assert values["broker_ssl"] == {"ssl_cert_reqs": ssl.CERT_REQUIRED}


REDISS = "rediss://:pw@redis.example.com:6380/0?ssl_cert_reqs=required&ssl_ca_certs=/ca.pem"


def test_the_redis_cache_takes_a_rediss_address():
    from django.core.cache.backends.redis import RedisCache

    pool = RedisCache(REDISS, {})._cache._get_connection_pool(write=True)
    assert pool.connection_class.__name__ == "SSLConnection"
    assert pool.connection_kwargs["ssl_cert_reqs"] == "required"
    assert pool.connection_kwargs["ssl_ca_certs"] == "/ca.pem"


def test_celery_takes_a_rediss_address():
    from kombu import Connection

    connection = Connection(REDISS)
    assert connection.transport_cls == "rediss"
    assert connection.ssl == {"ssl_cert_reqs": ssl.CERT_REQUIRED, "ssl_ca_certs": "/ca.pem"}
