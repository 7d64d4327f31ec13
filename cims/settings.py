"""CIMS settings: one module, configured by environment variables.

Defaults suit a developer's laptop. Production runs the same file with other values;
see docs/configuration.md for every variable.
"""

import os
import ssl
from pathlib import Path

import dj_database_url
from celery.schedules import crontab
from django.utils.csp import CSP

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("CIMS_VAR_DIR", BASE_DIR / "var"))


def env_bool(name, default=False):
    return os.environ.get(name, str(default)).strip().lower() in ("1", "true", "yes", "on")


def env_int(name, default):
    return int(os.environ.get(name, default))


def env_list(name, default=""):
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def env_secret(name, default=None):
    """A secret from NAME, or from the file named by NAME_FILE (Docker and Kubernetes secrets)."""
    if path := os.environ.get(f"{name}_FILE"):
        return Path(path).read_text().strip()
    return os.environ.get(name, default)


DEBUG = env_bool("DEBUG", True)
SECRET_KEY = env_secret("SECRET_KEY", "insecure-development-key-change-me" if DEBUG else None)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost" if DEBUG else "")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
SITE_URL = os.environ.get("SITE_URL", "http://127.0.0.1:8000")

INSTALLED_APPS = [
    "cims.apps.CimsAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "django.contrib.humanize",
    "django.forms",
    "django_filters",
    "django_htmx",
    "guardian",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "accounts",
    "customers",
    "intake",
    "reports",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Lets the audit trail record who did something, and from where, without being told.
    "accounts.audit.AuditContextMiddleware",
    # Sets request.user.otp_device and is_verified() from the session (two-factor sign-in).
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "accounts.middleware.UserLanguageMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # After messages: they tell a user why their session ended or what they must do first.
    "accounts.middleware.SessionTimeoutMiddleware",
    "accounts.middleware.TwoFactorMiddleware",
    "accounts.middleware.NoStoreMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

if not DEBUG:
    # In development runserver serves static files itself; in production WhiteNoise does.
    MIDDLEWARE.insert(2, "whitenoise.middleware.WhiteNoiseMiddleware")

ROOT_URLCONF = "cims.urls"
# Form widgets render through TEMPLATES, so templates/ can restyle a widget's markup.
FORM_RENDERER = "django.forms.renderers.TemplatesSetting"
WSGI_APPLICATION = "cims.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.csp",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.i18n",
            ],
        },
    },
]

# Without DATABASE_URL / REDIS_URL, `make run`, `make test` and manage.py start an embedded
# PostgreSQL and Redis under var/ (cims/embedded.py) and export their addresses to us.
DATABASE_URL = os.environ.get("DATABASE_URL", "")
EMBEDDED_POSTGRES = not DATABASE_URL
if EMBEDDED_POSTGRES:
    from cims import embedded

    DATABASE_URL = embedded.database_url()
DATABASES = {
    "default": dj_database_url.parse(
        DATABASE_URL,
        # Persistent connections roughly double list throughput; health checks drop dead ones.
        conn_max_age=env_int("DB_CONN_MAX_AGE", 600),
        conn_health_checks=True,
    )
}
DATABASES["default"].setdefault("OPTIONS", {})
DATABASES["default"]["OPTIONS"].setdefault("application_name", "cims")
# Server-side cursors cost three round trips for every choice list rendered from a queryset,
# and break behind a transaction-pooling PgBouncer.
DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = os.environ.get("REDIS_URL", "")
if not REDIS_URL:
    from cims import embedded

    REDIS_URL = embedded.redis_url()

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": os.environ.get("CACHE_KEY_PREFIX", "cims"),
    }
}

AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
# Customers are never visible to anonymous visitors, so guardian needs no anonymous user.
ANONYMOUS_USER_NAME = None
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "customers:list"
LOGOUT_REDIRECT_URL = "accounts:login"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 12},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Argon2 first: new passwords use it, and older hashes are re-hashed with it at the next sign-in.
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
]

# Sign-in throttling (accounts/security.py), counted in Redis. Failed passwords and codes count
# per account and per client address (see TRUSTED_PROXY_COUNT) within LOGIN_FAILURE_WINDOW
# seconds of the first; reaching a limit refuses sign-in for LOGIN_LOCKOUT_SECONDS.
LOGIN_FAILURE_WINDOW = env_int("LOGIN_FAILURE_WINDOW", 15 * 60)
LOGIN_ACCOUNT_FAILURE_LIMIT = env_int("LOGIN_ACCOUNT_FAILURE_LIMIT", 5)
LOGIN_ADDRESS_FAILURE_LIMIT = env_int("LOGIN_ADDRESS_FAILURE_LIMIT", 20)
LOGIN_LOCKOUT_SECONDS = env_int("LOGIN_LOCKOUT_SECONDS", 15 * 60)
# Two-factor authentication (accounts/two_factor.py): the name authenticator apps show.
OTP_TOTP_ISSUER = os.environ.get("OTP_TOTP_ISSUER", "CIMS")

# Sessions are read from Redis and written through to PostgreSQL, so they survive a restart;
# while Redis is unreachable they are read from PostgreSQL (accounts/sessions.py).
SESSION_ENGINE = "accounts.sessions"
# A session ends after SESSION_IDLE_TIMEOUT seconds without a request, and SESSION_MAX_AGE
# seconds after signing in however active it is (accounts.middleware.SessionTimeoutMiddleware).
SESSION_COOKIE_AGE = env_int("SESSION_IDLE_TIMEOUT", 30 * 60)
SESSION_MAX_AGE = env_int("SESSION_MAX_AGE", 12 * 60 * 60)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"

LANGUAGE_CODE = os.environ.get("LANGUAGE_CODE", "zh-hans")
LANGUAGES = [("zh-hans", "简体中文"), ("en", "English")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = os.environ.get("TIME_ZONE", "Asia/Shanghai")
USE_I18N = True
USE_TZ = True
# Region used to read phone numbers typed without a country code.
PHONE_DEFAULT_REGION = os.environ.get("PHONE_DEFAULT_REGION", "CN")

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", BASE_DIR / "staticfiles"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", VAR_DIR / "media"))
# Uploads (imported files) hold customers' data: readable by the application's user only.
FILE_UPLOAD_PERMISSIONS = 0o600
FILE_UPLOAD_DIRECTORY_PERMISSIONS = 0o700

# Email: the console in development; SMTP configured by EMAIL_* variables otherwise.
EMAIL_BACKEND_PATH = os.environ.get(
    "EMAIL_BACKEND",
    "django.core.mail.backends.console.EmailBackend"
    if DEBUG
    else "django.core.mail.backends.smtp.EmailBackend",
)
MAILERS = {"default": {"BACKEND": EMAIL_BACKEND_PATH}}
if EMAIL_BACKEND_PATH.endswith("smtp.EmailBackend"):
    MAILERS["default"]["OPTIONS"] = {
        "host": os.environ.get("EMAIL_HOST", "localhost"),
        "port": env_int("EMAIL_PORT", 25),
        "username": os.environ.get("EMAIL_HOST_USER", ""),
        "password": env_secret("EMAIL_HOST_PASSWORD", ""),
        "use_tls": env_bool("EMAIL_USE_TLS"),
        "use_ssl": env_bool("EMAIL_USE_SSL"),
        "timeout": env_int("EMAIL_TIMEOUT", 30),
    }
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "CIMS <cims@localhost>")
SERVER_EMAIL = os.environ.get("SERVER_EMAIL", DEFAULT_FROM_EMAIL)
ADMINS = [("Administrators", a) for a in env_list("ADMINS")]

# Security. Behind a TLS-terminating proxy set SECURE_PROXY_SSL_HEADER via USE_X_FORWARDED_PROTO.
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
if env_bool("USE_X_FORWARDED_PROTO"):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
X_FRAME_OPTIONS = "DENY"
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.NONCE],
    "style-src": [CSP.SELF],
    "img-src": [CSP.SELF, "data:"],
    "font-src": [CSP.SELF],
    "connect-src": [CSP.SELF],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
    "base-uri": [CSP.NONE],
    "object-src": [CSP.NONE],
}

# Limits on what a request may carry; larger bodies get a 400, not a 500.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 2_621_440)
DATA_UPLOAD_MAX_NUMBER_FIELDS = env_int("DATA_UPLOAD_MAX_NUMBER_FIELDS", 2000)

# Celery
# Celery spells a Redis Unix socket differently from redis-py.
CELERY_BROKER_URL = os.environ.get(
    "CELERY_BROKER_URL", REDIS_URL.replace("unix://", "redis+socket://", 1)
)
# Celery takes a rediss:// address without ssl_cert_reqs as "do not check the certificate";
# redis-py (the cache) checks it. Check it in both.
if CELERY_BROKER_URL.startswith("rediss://") and "ssl_cert_reqs=" not in CELERY_BROKER_URL:
    CELERY_BROKER_USE_SSL = {"ssl_cert_reqs": ssl.CERT_REQUIRED}
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ALWAYS_EAGER = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE = {
    "purge-finished-bulk-actions": {
        "task": "customers.tasks.purge_finished_bulk_actions",
        "schedule": 24 * 60 * 60,
    },
}

# Lists show an exact count up to this many matches, an estimate beyond it: counting costs a
# visit to every matching row, about 2 ms per thousand.
CUSTOMER_LIST_EXACT_COUNT_LIMIT = env_int("CUSTOMER_LIST_EXACT_COUNT_LIMIT", 1000)
# Bulk changes to more customers than this run in the background with a progress bar.
BULK_ACTION_INLINE_LIMIT = env_int("BULK_ACTION_INLINE_LIMIT", 500)

# --- Encryption at rest of customers' phone, email, birthday and street (cims/crypto.py) ---
# Keys come from the environment or secret files (NAME_FILE), never the database: entries
# "<version>:<base64 key>", the highest version encrypting, and a separate key for the blind
# indexes that search by exact value. Without them a development checkout (DEBUG) generates its
# own key file on first use; production refuses to start.
FIELD_ENCRYPTION_KEYS = env_secret("FIELD_ENCRYPTION_KEYS", "")
BLIND_INDEX_KEY = env_secret("BLIND_INDEX_KEY", "")
FIELD_ENCRYPTION_DEV_KEYS_FILE = VAR_DIR / "keys" / "field-keys.json" if DEBUG else None
# --- end of encryption settings ---

# --- Audit trail (accounts/audit.py; docs/configuration.md, "Audit trail") ---
# How many reverse proxies in front of CIMS append to X-Forwarded-For. With 0 the client address
# is REMOTE_ADDR and the header is ignored, so a client cannot forge its address in the trail.
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0)
# Signed checkpoints of the chain's head live outside the database, so that a chain rewritten
# in the database does not match them. Keep this directory on other storage in production.
AUDIT_CHECKPOINT_DIR = Path(os.environ.get("AUDIT_CHECKPOINT_DIR", VAR_DIR / "audit-checkpoints"))
AUDIT_CHECKPOINT_INTERVAL = env_int("AUDIT_CHECKPOINT_INTERVAL", 15 * 60)
# An Ed25519 private key (PEM). Development creates one on first use; production must provide
# it, or signing a checkpoint raises ImproperlyConfigured (and `check --deploy` reports it).
AUDIT_SIGNING_KEY_FILE = os.environ.get(
    "AUDIT_SIGNING_KEY_FILE", str(VAR_DIR / "keys" / "audit-signing-key.pem") if DEBUG else ""
)
AUDIT_SIGNING_KEY_AUTOCREATE = env_bool("AUDIT_SIGNING_KEY_AUTOCREATE", DEBUG)
# Public keys (PEM, several after a rotation) to verify checkpoints with; default: the signing
# key's own.
AUDIT_PUBLIC_KEY_FILE = os.environ.get("AUDIT_PUBLIC_KEY_FILE", "")
# Key of the hashes that let auditors compare masked sensitive values; default: SECRET_KEY.
AUDIT_HASH_KEY = env_secret("AUDIT_HASH_KEY", "")
CELERY_BEAT_SCHEDULE["write-audit-checkpoint"] = {
    "task": "accounts.tasks.write_audit_checkpoint",
    "schedule": AUDIT_CHECKPOINT_INTERVAL,
}
# --- end of audit trail ---

# --- Duplicate customers (customers/duplicates.py, customers/merging.py) ---
# Customers sharing a common name and a city (or a name prefix and a city) in a larger group
# than this are not compared: that many namesakes are no evidence, and comparing them all
# would cost the square of their number.
DUPLICATE_BLOCK_LIMIT = env_int("DUPLICATE_BLOCK_LIMIT", 50)
# Pairs scoring below this (out of 100) are not proposed.
DUPLICATE_MIN_SCORE = env_int("DUPLICATE_MIN_SCORE", 50)
# pg_trgm similarity (0 to 1) from which two names in pinyin count as similar.
DUPLICATE_NAME_SIMILARITY = float(os.environ.get("DUPLICATE_NAME_SIMILARITY", "0.5"))
# For how many days a merge can be undone; its snapshots are cleared after that.
MERGE_UNDO_DAYS = env_int("MERGE_UNDO_DAYS", 30)
CELERY_BEAT_SCHEDULE["refresh-duplicate-candidates"] = {
    "task": "customers.tasks.refresh_duplicate_candidates",
    "schedule": crontab(hour=2, minute=30),
}
CELERY_BEAT_SCHEDULE["clear-expired-merge-snapshots"] = {
    "task": "customers.tasks.clear_expired_merge_snapshots",
    "schedule": crontab(hour=3, minute=15),
}
# --- end of duplicate customers ---

# --- Partitions and archived history (customers/partitions.py, docs/partitioning-and-archiving.md)
# Interactions and orders are partitioned by month; partitions exist this many months ahead.
PARTITION_MONTHS_AHEAD = env_int("PARTITION_MONTHS_AHEAD", 3)
# Months of interactions and orders older than this many months move to the archive tables
# (0: never).
ARCHIVE_HISTORY_AFTER_MONTHS = env_int("ARCHIVE_HISTORY_AFTER_MONTHS", 36)
CELERY_BEAT_SCHEDULE["create-history-partitions"] = {
    "task": "customers.tasks.create_history_partitions",
    "schedule": crontab(hour=1, minute=10),
}
CELERY_BEAT_SCHEDULE["archive-old-history"] = {
    "task": "customers.tasks.archive_old_history",
    "schedule": crontab(day_of_month=1, hour=4, minute=20),
}
# --- end of partitions and archiving ---

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        "embedded_postgres": {"level": "WARNING"},
    },
}

# --- Intake: verifying submissions, text messages, processing (docs/configuration.md) ---
# A verification code's life, the wrong codes a submission allows in all, the wait before a new
# code may be asked for, and how many codes one submission may be sent.
INTAKE_VERIFY_CODE_MINUTES = env_int("INTAKE_VERIFY_CODE_MINUTES", 10)
INTAKE_VERIFY_MAX_ATTEMPTS = env_int("INTAKE_VERIFY_MAX_ATTEMPTS", 5)
INTAKE_VERIFY_RESEND_SECONDS = env_int("INTAKE_VERIFY_RESEND_SECONDS", 60)
INTAKE_VERIFY_MAX_SENDS = env_int("INTAKE_VERIFY_MAX_SENDS", 5)
# After a failed send a worker tries again INTAKE_VERIFY_RETRIES times (0: never), the first
# after INTAKE_VERIFY_RETRY_SECONDS, doubling the wait each time.
INTAKE_VERIFY_RETRY_SECONDS = env_int("INTAKE_VERIFY_RETRY_SECONDS", 30)
INTAKE_VERIFY_RETRIES = env_int("INTAKE_VERIFY_RETRIES", 4)
# Key of the hashes codes and link tokens are stored as; default: SECRET_KEY.
INTAKE_VERIFY_HASH_KEY = env_secret("INTAKE_VERIFY_HASH_KEY", "")
# Submissions never verified are deleted after this many days.
INTAKE_PENDING_DAYS = env_int("INTAKE_PENDING_DAYS", 7)
# Received submissions still unprocessed after this many minutes are queued again (a message
# lost while the broker was down).
INTAKE_REQUEUE_MINUTES = env_int("INTAKE_REQUEUE_MINUTES", 5)
INTAKE_REVIEW_PAGE_SIZE = env_int("INTAKE_REVIEW_PAGE_SIZE", 20)
# Text messages: logged in development; in production posted to an SMS gateway as JSON.
SMS_BACKEND = os.environ.get(
    "SMS_BACKEND", "intake.sms.LoggingBackend" if DEBUG else "intake.sms.HttpBackend"
)
SMS_HTTP_URL = os.environ.get("SMS_HTTP_URL", "")
SMS_HTTP_TOKEN = env_secret("SMS_HTTP_TOKEN", "")
SMS_HTTP_SENDER = os.environ.get("SMS_HTTP_SENDER", "CIMS")
SMS_HTTP_TIMEOUT = env_int("SMS_HTTP_TIMEOUT", 10)
# Countries (ISO 3166 codes) whose mobile numbers may be sent verification codes; empty: any.
# Limits what SMS pumping (bots entering premium-rate numbers abroad) can cost.
SMS_ALLOWED_REGIONS = env_list("SMS_ALLOWED_REGIONS", "CN")
CELERY_BEAT_SCHEDULE["purge-pending-submissions"] = {
    "task": "intake.tasks.purge_pending_submissions",
    "schedule": 24 * 60 * 60,
}
CELERY_BEAT_SCHEDULE["requeue-received-submissions"] = {
    "task": "intake.tasks.requeue_received_submissions",
    "schedule": 5 * 60,
}
# --- end of intake verification and processing ---

# --- Intake: the form builder and public forms (intake/public_views.py, intake/ratelimit.py) ---
# Questions one form may have.
INTAKE_MAX_FIELDS_PER_FORM = env_int("INTAKE_MAX_FIELDS_PER_FORM", 100)
# Submissions one client address may send in an hour, over all public forms; counted in Redis
# (INTAKE_RATE_LIMIT_REDIS_URL, default REDIS_URL). While Redis cannot be reached within
# INTAKE_RATE_LIMIT_TIMEOUT seconds submissions are accepted uncounted: losing a customer's
# answers is worse than a burst of spam, which the honeypot and the form token still hold back.
INTAKE_SUBMISSIONS_PER_HOUR = env_int("INTAKE_SUBMISSIONS_PER_HOUR", 20)
INTAKE_RATE_LIMIT_REDIS_URL = os.environ.get("INTAKE_RATE_LIMIT_REDIS_URL", REDIS_URL)
INTAKE_RATE_LIMIT_TIMEOUT = float(os.environ.get("INTAKE_RATE_LIMIT_TIMEOUT", "0.5"))
# Largest request body a public form accepts; larger ones get a 413 page.
INTAKE_MAX_BODY_BYTES = env_int("INTAKE_MAX_BODY_BYTES", 64 * 1024)
# How long a public form page stays valid for sending (its signed token), in seconds.
INTAKE_FORM_TOKEN_MAX_AGE = env_int("INTAKE_FORM_TOKEN_MAX_AGE", 24 * 60 * 60)
# Which sites may show an embeddable form in a frame (CSP frame-ancestors sources); forms not
# marked embeddable refuse every frame.
INTAKE_FRAME_ANCESTORS = env_list(
    "INTAKE_FRAME_ANCESTORS", "'self',https:,http:" if DEBUG else "'self',https:"
)
# --- end of the form builder and public forms ---

# --- Intake: survey results, quick entry, forms filled on a customer's behalf ---
# Submissions one Excel export of a form's results may hold; beyond it, staff narrow the dates.
# An export is written while the browser waits, about 6,000 submissions a second on two cores:
# keep the limit well inside the web server's request timeout.
INTAKE_EXPORT_MAX_ROWS = env_int("INTAKE_EXPORT_MAX_ROWS", 50_000)
# Entries a quick-entry page keeps waiting in the browser while offline; past it, it refuses
# new ones until the queue is sent (a browser's storage is not a database).
INTAKE_QUICK_ENTRY_QUEUE_LIMIT = env_int("INTAKE_QUICK_ENTRY_QUEUE_LIMIT", 500)
# --- end of survey results and quick entry ---

# --- Customer imports (customers/imports.py; docs/imports.md) ---
# The largest file accepted, checked before the upload is read; and the most rows in one file.
IMPORT_MAX_BYTES = env_int("IMPORT_MAX_BYTES", 50 * 1024 * 1024)
IMPORT_MAX_ROWS = env_int("IMPORT_MAX_ROWS", 1_000_000)
# The most columns a file may have (each is a choice on the mapping page).
IMPORT_MAX_COLUMNS = env_int("IMPORT_MAX_COLUMNS", 500)
# An XLSX file is a zip archive: what it may unpack to in all, and how many times larger than
# its compressed size a member may be (a "zip bomb" is thousands of times larger).
IMPORT_XLSX_MAX_UNPACKED_BYTES = env_int("IMPORT_XLSX_MAX_UNPACKED_BYTES", 1024 * 1024 * 1024)
IMPORT_XLSX_MAX_RATIO = env_int("IMPORT_XLSX_MAX_RATIO", 200)
# Uploaded files and error reports are deleted this many days after the import finished.
IMPORT_KEEP_FILES_DAYS = env_int("IMPORT_KEEP_FILES_DAYS", 30)
# An import can be reverted for this many days; then the customers' earlier rows kept for that
# are deleted.
IMPORT_REVERT_DAYS = env_int("IMPORT_REVERT_DAYS", 30)
CELERY_BEAT_SCHEDULE["purge-import-files"] = {
    "task": "customers.tasks.purge_import_files",
    "schedule": 24 * 60 * 60,
}
# --- end of customer imports ---

# --- Customer analytics: RFM, lifetime value, cohorts (reports/metrics.py; docs/analytics.md) ---
# Predicted lifetime value = average order value x orders a year x this many years.
ANALYTICS_EXPECTED_LIFETIME_YEARS = float(os.environ.get("ANALYTICS_EXPECTED_LIFETIME_YEARS", "3"))
# The nightly refresh of scores, segments and lifetime values runs at this hour (TIME_ZONE).
ANALYTICS_REFRESH_HOUR = env_int("ANALYTICS_REFRESH_HOUR", 2)
# Memory for the refresh's sorts (SET LOCAL work_mem in its transaction only), in MB: a million
# customers need about 200 MB to sort in memory instead of on disk.
ANALYTICS_REFRESH_WORK_MEM_MB = env_int("ANALYTICS_REFRESH_WORK_MEM_MB", 256)
# How long the analytics page's figures are kept for the same set of visible customers.
ANALYTICS_CACHE_SECONDS = env_int("ANALYTICS_CACHE_SECONDS", 10 * 60)
# Preferred products and channels per segment are read from the orders of this many months.
ANALYTICS_PREFERENCE_MONTHS = env_int("ANALYTICS_PREFERENCE_MONTHS", 12)
CELERY_BEAT_SCHEDULE["refresh-customer-metrics"] = {
    "task": "reports.tasks.refresh_customer_metrics",
    "schedule": crontab(hour=ANALYTICS_REFRESH_HOUR, minute=15),
}
# --- end of customer analytics ---

# --- Dashboard (reports/dashboard.py; docs/dashboard.md) ---
# Revenue figures count orders in this currency (ISO 4217); others are not converted.
DASHBOARD_CURRENCY = os.environ.get("DASHBOARD_CURRENCY", "CNY")
# How many of the most used tags the dashboard shows.
DASHBOARD_TOP_TAGS = env_int("DASHBOARD_TOP_TAGS", 10)
# --- end of dashboard ---

# --- Exports and generated files (reports/exports.py; docs/exports.md) ---
# Up to this many rows an export is made while the user waits; more become a generated file
# made in the background, with progress, listed under /reports/files/.
EXPORT_SYNC_MAX_ROWS = env_int("EXPORT_SYNC_MAX_ROWS", 5_000)
# The most rows of one Excel or CSV export (Excel's own limit is 1,048,575 rows).
EXPORT_MAX_ROWS = env_int("EXPORT_MAX_ROWS", 1_000_000)
# A PDF of more rows than this is made only in the background; above the hard cap it is
# refused, with a suggestion to export to Excel instead. WeasyPrint keeps the whole document
# laid out until it is written, about 0.2 MB per row of 13 columns: 5,000 rows (about 130
# pages) take a worker about 1 GB and half a minute.
EXPORT_PDF_SYNC_MAX_ROWS = env_int("EXPORT_PDF_SYNC_MAX_ROWS", 1_000)
EXPORT_PDF_MAX_ROWS = env_int("EXPORT_PDF_MAX_ROWS", 5_000)
# Generated files are deleted (file and row) this many days after they were asked for.
GENERATED_FILE_RETENTION_DAYS = env_int("GENERATED_FILE_RETENTION_DAYS", 14)
CELERY_BEAT_SCHEDULE["delete-expired-generated-files"] = {
    "task": "reports.tasks.delete_expired_generated_files",
    "schedule": 60 * 60,
}
# WeasyPrint logs a line per page laid out at INFO, and every CSS rule it ignores at WARNING.
LOGGING["loggers"]["weasyprint"] = {"level": "ERROR"}
# --- end of exports ---

# --- Analysis and saved reports (reports/analysis.py; docs/reports.md) ---
# The most rows a builder report returns (an export, a scheduled file); on screen it shows at
# most REPORT_SCREEN_ROWS of them.
REPORT_MAX_ROWS = env_int("REPORT_MAX_ROWS", 100_000)
REPORT_SCREEN_ROWS = env_int("REPORT_SCREEN_ROWS", 200)
# Reports up to this many rows download at once; larger ones are built by a worker.
REPORT_DIRECT_EXPORT_ROWS = env_int("REPORT_DIRECT_EXPORT_ROWS", 5_000)
# The most rows or columns a pivot shows (the largest groups first); the rest are summed up in
# the totals, which always cover every customer.
ANALYSIS_MAX_GROUPS = env_int("ANALYSIS_MAX_GROUPS", 200)
# Parallel workers PostgreSQL may use for one pivot query (0 turns parallelism off).
ANALYSIS_PARALLEL_WORKERS = env_int("ANALYSIS_PARALLEL_WORKERS", 2)
# --- end of analysis and saved reports ---

# --- Scheduled reports (reports/scheduling.py; docs/scheduled-reports.md) ---
# How often beat looks for due schedules, in seconds; a schedule fires at most this late.
SCHEDULED_REPORT_DISPATCH_SECONDS = env_int("SCHEDULED_REPORT_DISPATCH_SECONDS", 60)
# Files of one email up to this size in all are attached; larger ones are sent as links.
SCHEDULED_REPORT_ATTACHMENT_MAX_BYTES = env_int(
    "SCHEDULED_REPORT_ATTACHMENT_MAX_BYTES", 5 * 1024 * 1024
)
# Scheduled files are kept (and their links work) this many days.
SCHEDULED_REPORT_RETENTION_DAYS = env_int("SCHEDULED_REPORT_RETENTION_DAYS", 30)
SCHEDULED_REPORT_FROM_EMAIL = os.environ.get("SCHEDULED_REPORT_FROM_EMAIL", DEFAULT_FROM_EMAIL)
# A run whose emails cannot be sent is tried again this many times, the first after
# SCHEDULED_REPORT_RETRY_SECONDS, doubling the wait each time; then it is marked failed.
SCHEDULED_REPORT_RETRIES = env_int("SCHEDULED_REPORT_RETRIES", 6)
SCHEDULED_REPORT_RETRY_SECONDS = env_int("SCHEDULED_REPORT_RETRY_SECONDS", 60)
# An unfinished run untouched this long, whose worker is gone, is queued again; a run whose
# worker was killed this many times is marked failed.
SCHEDULED_REPORT_STALLED_SECONDS = env_int("SCHEDULED_REPORT_STALLED_SECONDS", 5 * 60)
SCHEDULED_REPORT_MAX_ATTEMPTS = env_int("SCHEDULED_REPORT_MAX_ATTEMPTS", 5)
CELERY_BEAT_SCHEDULE["dispatch-scheduled-reports"] = {
    "task": "reports.schedule_tasks.dispatch_scheduled_reports",
    "schedule": SCHEDULED_REPORT_DISPATCH_SECONDS,
}
# --- end of scheduled reports ---

# --- Backups (accounts/backups.py; docs/operations.md, "Backups") ---
# Backups are encrypted for an RSA public key (PEM); only its private key can restore them, and
# it belongs off this server. Development (`make run`) makes a pair under var/keys/.
BACKUP_PUBLIC_KEY_FILE = os.environ.get(
    "BACKUP_PUBLIC_KEY_FILE", str(VAR_DIR / "keys" / "backup-public.pem") if DEBUG else ""
)
# Only for restore drills (`backup --verify`) run on this machine; empty in production.
BACKUP_PRIVATE_KEY_FILE = os.environ.get(
    "BACKUP_PRIVATE_KEY_FILE", str(VAR_DIR / "keys" / "backup-private.pem") if DEBUG else ""
)
# Where backups go: this directory, or with BACKUP_S3_BUCKET an S3-compatible bucket (the
# directory then only holds the backup being made). S3 credentials come from the usual
# AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY variables (or an instance role).
BACKUP_DIR = Path(os.environ.get("BACKUP_DIR", VAR_DIR / "backups"))
BACKUP_S3_BUCKET = os.environ.get("BACKUP_S3_BUCKET", "")
BACKUP_S3_PREFIX = os.environ.get("BACKUP_S3_PREFIX", "cims/")
BACKUP_S3_ENDPOINT_URL = os.environ.get("BACKUP_S3_ENDPOINT_URL", "") or None
BACKUP_S3_REGION = os.environ.get("BACKUP_S3_REGION", "") or None
# Retention: the newest backup of each of the last N days, weeks and months is kept, older
# ones are deleted from the destination after each scheduled backup.
BACKUP_KEEP_DAILY = env_int("BACKUP_KEEP_DAILY", 7)
BACKUP_KEEP_WEEKLY = env_int("BACKUP_KEEP_WEEKLY", 5)
BACKUP_KEEP_MONTHLY = env_int("BACKUP_KEEP_MONTHLY", 12)
# pg_dump's compression level (0-9) before encryption.
BACKUP_COMPRESSION_LEVEL = env_int("BACKUP_COMPRESSION_LEVEL", 6)
# Administrators are warned when the newest successful backup is older than this.
BACKUP_MAX_AGE_HOURS = env_int("BACKUP_MAX_AGE_HOURS", 26)
# A backup still unfinished this long after it was asked for lost its worker: it is marked
# failed (and no longer blocks starting another).
BACKUP_STALLED_HOURS = env_int("BACKUP_STALLED_HOURS", 12)
# pg_dump and pg_restore must be at least the server's major version: the directory holding
# them, by default the embedded server's own, else whichever the PATH finds.
PG_BIN_DIR = os.environ.get("PG_BIN_DIR", "") or (
    str(embedded.bin_dir()) if EMBEDDED_POSTGRES else ""
)
BACKUP_HOUR = env_int("BACKUP_HOUR", 1)
CELERY_BEAT_SCHEDULE["backup-database"] = {
    "task": "accounts.tasks.scheduled_backup",
    "schedule": crontab(hour=BACKUP_HOUR, minute=30),
}
# --- end of backups ---
# --- Erasure and retention (customers/erasure.py, customers/retention.py) ---
# Every erasure is also appended to this file, which must survive restoring the database (keep
# it on other storage than the database's backups): erasures are applied again from it after a
# restore. Lines carry an HMAC under ERASURE_LEDGER_KEY (default: SECRET_KEY).
ERASURE_LEDGER_PATH = Path(
    os.environ.get("ERASURE_LEDGER_PATH", VAR_DIR / "erasures" / "ledger.jsonl")
)
ERASURE_LEDGER_KEY = env_secret("ERASURE_LEDGER_KEY", "")
# At most this many records per retention rule and night: each customer is erased in its own
# short transaction, and a backlog is worked off over several nights.
RETENTION_BATCH_LIMIT = env_int("RETENTION_BATCH_LIMIT", 5000)
CELERY_BEAT_SCHEDULE["apply-retention-rules"] = {
    "task": "customers.retention_tasks.apply_retention_rules",
    "schedule": crontab(hour=4, minute=10),
}
# --- end of erasure and retention ---
# --- Archiving of inactive customers (customers/archiving.py, docs/archiving.md) ---
# Customers without an order, interaction, consent, submission or edit for more than this many
# months move to the archive every night; 0 turns archiving off.
ARCHIVE_CUSTOMERS_AFTER_MONTHS = env_int("ARCHIVE_CUSTOMERS_AFTER_MONTHS", 24)
# Customers moved per transaction: each batch holds its rows' locks until it commits.
ARCHIVE_BATCH_SIZE = env_int("ARCHIVE_BATCH_SIZE", 500)
CELERY_BEAT_SCHEDULE["archive-inactive-customers"] = {
    "task": "customers.tasks.archive_inactive_customers",
    "schedule": crontab(hour=4, minute=0),
}
# --- end of archiving ---
