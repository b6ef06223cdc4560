"""Batchdash settings: one file, read from environment variables only.

Every variable is listed in .env.example and the README. Defaults suit a laptop:
SQLite and a Celery broker that needs no server, with files under DATA_DIR.
DATABASE_URL (PostgreSQL) and CELERY_BROKER_URL (Redis) switch to the production stack.
"""

import contextlib
import os
import secrets
import tempfile
from datetime import timedelta
from pathlib import Path

import dj_database_url
from cryptography.fernet import Fernet
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured
from kombu import Exchange, Queue

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str = "") -> str:
    # Set but empty (as in a copied .env.example) means "use the default".
    return os.environ.get(name) or default


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {value!r}")


def _env_number(name: str, default, cast, what: str):
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return cast(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be {what}, not {value!r}") from None


def env_int(name: str, default: int) -> int:
    return _env_number(name, default, int, "a whole number")


def env_float(name: str, default: float) -> float:
    return _env_number(name, default, float, "a number")


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env_str(name, default).split(",") if item.strip()]


DATA_DIR = Path(env_str("DATA_DIR", str(BASE_DIR / "data"))).resolve()
# Private from the start: it holds the database, the uploads and the generated secrets.
DATA_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)


def _local_secret(filename: str, make) -> str:
    """A secret generated once and kept in DATA_DIR, for installs that set none.

    Production sets the variable instead; `check --deploy` warns when it is missing. The file
    is written whole under another name, readable by its owner only, then linked into place,
    so that it is never readable by others, not even for a moment, and a process starting at
    the same time (web and worker) never reads it half-written.
    """
    path = DATA_DIR / filename
    if not path.exists():
        fd, draft = tempfile.mkstemp(dir=DATA_DIR, prefix=f".{filename}.")  # created 0600
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(make())
            os.link(draft, path)
        except FileExistsError:
            pass  # another process made it first; use theirs
        finally:
            os.unlink(draft)
    return path.read_text().strip()


DEBUG = env_bool("DEBUG", False)
# Whether a secret was generated rather than set, for the deployment checks (jobs.checks).
SECRET_KEY_GENERATED = not env_str("SECRET_KEY")
SECRET_KEY = env_str("SECRET_KEY") or _local_secret("secret_key", lambda: secrets.token_urlsafe(50))
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
SITE_NAME = "Batchdash"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "template_partials",
    "axes",
    "jobs",
    "simulator",
]

MIDDLEWARE = [
    # First: it reads a chunked request body before anything else (CSRF included) looks at it.
    "batchdash.chunked.ChunkedBodyMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Before any view: a NUL in the address would reach a database query (PostgreSQL refuses it).
    "batchdash.addresses.RefuseNulMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django_ratelimit.middleware.RatelimitMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into the lockout page.
    "axes.middleware.AxesMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "batchdash.urls"
WSGI_APPLICATION = "batchdash.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "jobs.context_processors.frame",
            ],
        },
    },
]

# SQLite is the embedded default; WAL and a busy timeout let the web server and
# the worker write to it at the same time without "database is locked".
DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL") or f"sqlite:///{DATA_DIR / 'batchdash.sqlite3'}",
        conn_max_age=env_int("DB_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
    # A file, not :memory:, so that a worker subprocess in the end-to-end tests
    # can open the same test database.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test-batchdash.sqlite3")}
    # SQLite would create the file readable by everyone (and its -wal and -shm files after
    # it, which take its permissions); an empty file made first, owner-only, is a valid database.
    _sqlite_name = str(DATABASES["default"]["NAME"])
    if _sqlite_name != ":memory:" and not _sqlite_name.startswith("file:"):
        # An existing database keeps its permissions; a missing folder fails later, clearly.
        with contextlib.suppress(FileExistsError, FileNotFoundError):
            os.close(os.open(_sqlite_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "jobs:home"
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Lock a user name from one address after repeated failures; the page says the same
# whether or not the account exists.
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LOGIN_LOCKOUT_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked.html"
AXES_VERBOSE = False
# Behind this many reverse proxies (each adding to X-Forwarded-For), the client's address is
# read from that header instead of the socket, for the lockout and the audit log (see
# batchdash.proxies). 0: no proxy, the header is ignored (anyone could write it).
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0)
AXES_CLIENT_IP_CALLABLE = "batchdash.proxies.client_address"


def axes_username(request, credentials: dict | None = None):
    """The user name a failed login is recorded under, cut to django-axes' column of 255 characters.

    Django's login forms never enforce the name's length, so a very long name reached the
    record of the failure, which PostgreSQL refused (500). No account has a name that long.
    """
    name = (credentials or getattr(request, "data", request.POST)).get("username")
    return name[:255] if isinstance(name, str) else name


AXES_USERNAME_CALLABLE = axes_username

# Shared by every web process for rate limits: Redis in production (CACHE_URL), memory otherwise.
CACHE_URL = env_str("CACHE_URL", "")
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": CACHE_URL}
    if CACHE_URL
    else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
}
# Requests per user per hour, with django-ratelimit.
RATE_LIMIT_UPLOADS = env_str("RATE_LIMIT_UPLOADS", "60/h")
RATE_LIMIT_SUBMITS = env_str("RATE_LIMIT_SUBMITS", "120/h")
RATE_LIMIT_KEY_TESTS = env_str("RATE_LIMIT_KEY_TESTS", "30/h")
RATELIMIT_VIEW = "jobs.views.common.rate_limited"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]

# Uploaded datasets and provider results live in MEDIA_ROOT, which is never
# served directly: downloads go through views that check who is asking.
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(DATA_DIR / "files")))
# No URL serves MEDIA_ROOT; this prefix exists only because Django's test server expects one.
MEDIA_URL = "/media-never-served/"
STORAGES = {
    "default": {"BACKEND": env_str("FILE_STORAGE", "django.core.files.storage.FileSystemStorage")},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
# FILE_STORAGE=storages.backends.s3.S3Storage (django-storages) keeps the files in a bucket that
# every machine reaches; AWS_S3_ENDPOINT_URL points it at any S3-compatible store. boto3 finds the
# credentials itself (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or the machine's role).
AWS_STORAGE_BUCKET_NAME = env_str("AWS_STORAGE_BUCKET_NAME")
AWS_S3_ENDPOINT_URL = env_str("AWS_S3_ENDPOINT_URL") or None
AWS_S3_REGION_NAME = env_str("AWS_S3_REGION_NAME") or None
AWS_LOCATION = env_str("AWS_LOCATION")
# Private objects (the bucket's own policy), and a name never overwritten, as on a file system.
AWS_DEFAULT_ACL = None
AWS_S3_FILE_OVERWRITE = False
WHITENOISE_USE_FINDERS = DEBUG
FILE_UPLOAD_PERMISSIONS = 0o600
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_500_000
# The size limit first, so that an upload over UPLOAD_MAX_BYTES is stopped while it streams.
FILE_UPLOAD_HANDLERS = [
    "batchdash.uploads.SizeLimitedUploadHandler",
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]
UPLOAD_MAX_BYTES = env_int("UPLOAD_MAX_BYTES", 1024**3)
# Processes that prepare a long table (the worker's own and PREPARE_PROCESSES - 1 that count tokens
# beside it; jobs.formats.requestlines). 1: all in the worker's process.
PREPARE_PROCESSES = max(env_int("PREPARE_PROCESSES", os.cpu_count() or 1), 1)
# A body sent without a Content-Length (Transfer-Encoding: chunked) is read up to this many bytes:
# the largest upload plus room for the multipart framing around it.
CHUNKED_BODY_MAX_BYTES = env_int("CHUNKED_BODY_MAX_BYTES", UPLOAD_MAX_BYTES + 1024**2)

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
# Served over HTTPS (production): redirect plain HTTP, secure cookies, HSTS.
HTTPS = env_bool("HTTPS", False)
SECURE_SSL_REDIRECT = HTTPS
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_HSTS_SECONDS = env_int("HSTS_SECONDS", 31_536_000) if HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
SECURE_HSTS_PRELOAD = HTTPS
# Behind a proxy that terminates TLS and sets X-Forwarded-Proto.
if env_bool("TRUST_X_FORWARDED_PROTO", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Error pages and emails hide provider keys even in the SDK's own frames.
DEFAULT_EXCEPTION_REPORTER_FILTER = "batchdash.reporting.SecretHidingFilter"
# No inline script anywhere; inline styles only for progress bar widths and htmx's indicator.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF, "'unsafe-inline'"],
        "img-src": [SELF, "data:"],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}

# Provider secrets are encrypted with these Fernet keys (newest first), kept apart
# from SECRET_KEY so that rotating one does not touch the other.
FIELD_ENCRYPTION_KEYS_GENERATED = not env_list("FIELD_ENCRYPTION_KEYS")
FIELD_ENCRYPTION_KEYS = env_list("FIELD_ENCRYPTION_KEYS") or [
    _local_secret("field_encryption_key", lambda: Fernet.generate_key().decode())
]
# A key that is not a Fernet key would only fail at the first encryption, in the middle of
# an admin's work; stop here instead, without echoing the value.
for _position, _key in enumerate(FIELD_ENCRYPTION_KEYS, start=1):
    try:
        Fernet(_key.encode())
    except ValueError:
        raise ImproperlyConfigured(
            f"FIELD_ENCRYPTION_KEYS: key number {_position} is not a Fernet key (32 url-safe "
            'base64-encoded bytes). Generate one with: python -c "from cryptography.fernet import '
            'Fernet; print(Fernet.generate_key().decode())"'
        ) from None

# --- Celery -----------------------------------------------------------------
# Job state lives in our tables, so tasks keep no results and every task is
# idempotent: late acknowledgement plus requeue on a lost worker is safe.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://")
if CELERY_BROKER_URL == "filesystem://":
    # The embedded broker: kombu's file transport with its read-while-written races fixed
    # (batchdash/filebroker.py), every file of it under DATA_DIR, never in the current folder.
    CELERY_BROKER_TRANSPORT = "batchdash.filebroker:Transport"
    _broker_dir = DATA_DIR / "broker"
    for _folder in ("queue", "control", "processed"):
        (_broker_dir / _folder).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "control_folder": str(_broker_dir / "control"),
        "processed_folder": str(_broker_dir / "processed"),
        "store_processed": False,
        # How long a worker with a free slot sleeps before it looks at the folder again (kombu's
        # default is a second): a job's 20 parts, submitted two at a time, each waited for it.
        "polling_interval": 0.1,
    }
    # No remote control (`celery inspect`, pidbox): on a file broker it is a fanout exchange that
    # every worker start and stop rewrites, and a killed worker leaves its queue bound there for
    # good, so each broadcast would pile up files nobody reads. Nothing in the app uses it.
    CELERY_WORKER_ENABLE_REMOTE_CONTROL = False
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 2 * 3600}
# Two queues, each with its own worker: short control work (the scheduler's ticks, polls, submits,
# cancels) and long file work (prepare, finish, results, counting an upload), so that a tick
# never waits, and expires, behind a prepare of a million rows. Unlisted tasks are control work.
CELERY_TASK_QUEUES = [Queue(name, Exchange("celery"), routing_key=name) for name in ("control", "files")]
CELERY_TASK_DEFAULT_QUEUE = "control"
CELERY_TASK_ROUTES = {
    f"jobs.tasks.{name}": {"queue": "files"}
    for name in (
        "prepare_job",
        "count_dataset_rows",
        "finish_batch",
        "build_results",
        "write_other_formats",
        "clean_up_files",
        # Run now: minutes of one request after another, which must not hold up the control queue.
        "answer_now",
    )
}
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 45 * 60
CELERY_TASK_SOFT_TIME_LIMIT = 40 * 60
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BEAT_SCHEDULE_FILENAME = str(DATA_DIR / "celerybeat-schedule")
# A step whose row has not moved for this long is assumed lost and enqueued again.
STALLED_AFTER_SECONDS = env_float("STALLED_AFTER_SECONDS", 600.0)
# The scheduler wakes up this often; each batch keeps its own next-poll time.
SCHEDULER_TICK_SECONDS = env_float("SCHEDULER_TICK_SECONDS", 2.0)
CELERY_BEAT_SCHEDULE = {
    "schedule-batches": {
        "task": "jobs.tasks.schedule_batches",
        "schedule": SCHEDULER_TICK_SECONDS,
        "options": {"expires": max(SCHEDULER_TICK_SECONDS - 0.5, 1)},
    },
    "resume-stalled-work": {
        "task": "jobs.tasks.resume_stalled_work",
        "schedule": min(60.0, STALLED_AFTER_SECONDS),
        "options": {"expires": max(min(55.0, STALLED_AFTER_SECONDS - 0.5), 1)},
    },
    "clean-up-files": {
        "task": "jobs.tasks.clean_up_files",
        "schedule": 3600.0,
        "options": {"expires": 3000},
    },
}
# Bearer token a Prometheus scraper sends to /metrics (admins signed in need none).
METRICS_TOKEN = env_str("METRICS_TOKEN", "")

# --- Providers (batch limits and polling pace are set per credential) -------------
# Timeout for one provider call; large uploads get more (see jobs.providers.client).
PROVIDER_TIMEOUT_SECONDS = env_float("PROVIDER_TIMEOUT_SECONDS", 60.0)
# Delete our files at the provider once their content is safely stored here.
DELETE_PROVIDER_FILES = env_bool("DELETE_PROVIDER_FILES", True)
# Days to keep the raw request and result files of finished jobs (0: forever). The
# results, failures and per-row outcomes are always kept.
RAW_FILE_RETENTION_DAYS = env_int("RAW_FILE_RETENTION_DAYS", 30)
# How many times a job's expired rows are sent again on their own in follow-up batches.
MAX_AUTO_ATTEMPTS = env_int("MAX_AUTO_ATTEMPTS", 3)
# A batch longer than this in `validating` or `finalizing` is flagged on its page.
STUCK_VALIDATING_MINUTES = env_float("STUCK_VALIDATING_MINUTES", 60.0)
STUCK_FINALIZING_MINUTES = env_float("STUCK_FINALIZING_MINUTES", 120.0)
# Waiting after the provider said its queue for a model was full, doubling each time.
TOKEN_LIMIT_BACKOFF_SECONDS = env_float("TOKEN_LIMIT_BACKOFF_SECONDS", 60.0)
# The plan offers Run now (the normal API, at the normal price) beside Send when the table would be
# answered within this many minutes at the key's rate limits (jobs.money.plans.run_now_offer).
RUN_NOW_MAX_MINUTES = env_float("RUN_NOW_MAX_MINUTES", 10.0)

# --- Simulator -----------------------------------------------------------------
SIMULATOR_ENABLED = env_bool("SIMULATOR_ENABLED", True)
# Anyone who reaches the server reaches the simulator, so its key is as private as any
# other secret: generated once into DATA_DIR unless set. Each key sees only its own files
# and batches, as OpenAI scopes them to a project.
SIMULATOR_API_KEYS = env_list("SIMULATOR_API_KEYS") or (
    [_local_secret("simulator_api_key", lambda: "sk-sim-" + secrets.token_urlsafe(32))]
    if SIMULATOR_ENABLED
    else []
)
# Simulated seconds that pass per real second: 1 is realistic, 20 runs a
# 1,000-row batch in about 15 seconds.
SIMULATOR_SPEED = env_float("SIMULATOR_SPEED", 20.0)
# Enqueued prompt tokens per model across unfinished batches, as OpenAI limits them.
SIMULATOR_ENQUEUED_TOKEN_LIMIT = env_int("SIMULATOR_ENQUEUED_TOKEN_LIMIT", 20_000_000)
# Per key, on the synchronous endpoints (simulator.ratelimit): 0 is no limit.
SIMULATOR_REQUESTS_PER_MINUTE = env_int("SIMULATOR_REQUESTS_PER_MINUTE", 0)
SIMULATOR_TOKENS_PER_MINUTE = env_int("SIMULATOR_TOKENS_PER_MINUTE", 0)
PORT = env_int("PORT", 8000)
# The web server's port. Under `make run`, honcho gives the other processes their own PORT (+100
# each); the Makefile keeps the web server's here, so that every process links to it.
WEB_PORT = env_int("WEB_PORT", PORT)
# The simulator's own server under `make run` (batchdash.simulator_wsgi), next to the web server's.
SIMULATOR_PORT = env_int("SIMULATOR_PORT", WEB_PORT + 1)
SIMULATOR_BASE_URL = env_str("SIMULATOR_BASE_URL", f"http://127.0.0.1:{SIMULATOR_PORT}/simulator/v1")

# --- Email -----------------------------------------------------------------------
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "batchdash@localhost")
# The address people reach the site at, for links in emails.
SITE_URL = env_str("SITE_URL", f"http://127.0.0.1:{WEB_PORT}").rstrip("/")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "httpx2": {"level": "WARNING"},
        "httpcore2": {"level": "WARNING"},
        # The scheduler ticks every few seconds; one line per tick would bury everything else.
        "celery.beat": {"level": "WARNING"},
        "celery.app.trace": {"level": "WARNING"},
        "celery.worker.strategy": {"level": "WARNING"},
    },
}
