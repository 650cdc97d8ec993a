"""FilmStudio settings: everything comes from the environment (and an optional .env file)."""

import secrets
from pathlib import Path
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

import filmstudio.db  # noqa: F401 (registers the fork hook: see its docstring)
from filmstudio.env import (
    database_config,
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_list,
    env_path_sizes,
    env_str,
    read_dotenv,
    redis_connection_kwargs,
)

BASE_DIR = Path(__file__).resolve().parent.parent
read_dotenv(BASE_DIR / ".env")

VAR_DIR = Path(env_str("VAR_DIR", str(BASE_DIR / "var")))
DEBUG = env_bool("DJANGO_DEBUG", False)


def _secret_key() -> str:
    key = env_str("SECRET_KEY")
    if key:
        return key
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY must be set when DJANGO_DEBUG is off "
            "(local runs with DJANGO_DEBUG=true generate one under var/)"
        )
    # A fresh clone has no key: keep a generated one so sessions survive restarts.
    path = VAR_DIR / "secret_key"
    if not path.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(64))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
if DEBUG:
    ALLOWED_HOSTS = [*ALLOWED_HOSTS, "testserver"]
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
PORT = env_int("PORT", 5000, minimum=1, maximum=65535)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_rq",
    "django_eventstream",
    "projects",
    "generation",
    "director",
    "media",
]

MIDDLEWARE = [
    "filmstudio.middleware.StreamsHoldNoConnectionMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "filmstudio.middleware.BodySizeLimitMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "filmstudio.throttle.LoginThrottleMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "filmstudio.urls"
WSGI_APPLICATION = "filmstudio.wsgi.application"
ASGI_APPLICATION = "filmstudio.asgi.application"

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
            ],
        },
    },
]

# Database: DATABASE_URL (or SUPABASE_DB_URL). `make run` / `make test` start an embedded
# PostgreSQL and set DATABASE_URL when neither is given.
_db_var = "DATABASE_URL" if env_str("DATABASE_URL") else "SUPABASE_DB_URL"
_db_url = env_str(_db_var)
if not _db_url:
    raise ImproperlyConfigured(
        "DATABASE_URL is not set: point it at PostgreSQL, or use `make run` / `make test`, "
        "which start an embedded PostgreSQL when it is unset"
    )
_db = database_config(_db_url, name=_db_var)
_db["CONN_MAX_AGE"] = env_int("DB_CONN_MAX_AGE", 0, minimum=0)
_db["CONN_HEALTH_CHECKS"] = True
if env_str("TEST_DATABASE_NAME"):  # lets two test runs share one server
    _db["TEST"] = {"NAME": env_str("TEST_DATABASE_NAME")}
# Transaction poolers (Supabase's pgbouncer/supavisor) break prepared statements and
# server-side cursors, so both are switched off on demand.
DB_POOLER = env_bool("DB_POOLER", False)
if DB_POOLER:
    _db["OPTIONS"]["prepare_threshold"] = None
    _db["DISABLE_SERVER_SIDE_CURSORS"] = True
else:
    _db["DISABLE_SERVER_SIDE_CURSORS"] = env_bool("DB_DISABLE_SERVER_SIDE_CURSORS", False)
    # Statements of server-side binding cursors are prepared on their connection when first
    # run: only the hottest reads use those (filmstudio.queries); the ORM's bind on the client.
    _db["OPTIONS"].setdefault("prepare_threshold", 0)
# A pool of open connections per process (psycopg_pool, through Django): a request borrows one
# and gives it back when it ends, instead of opening a PostgreSQL session (under ASGI each
# request runs in a thread of its own, so CONN_MAX_AGE keeps nothing between requests). A
# borrowed connection is checked first (CONN_HEALTH_CHECKS), so one the server dropped is
# replaced. Off by default behind a transaction pooler (it pools already) and with
# DB_CONN_MAX_AGE, which it replaces; a forked child (a work horse) forgets its parent's and
# connects directly (filmstudio.db).
DB_POOL = env_bool("DB_POOL", not DB_POOLER and _db["CONN_MAX_AGE"] == 0)
if DB_POOL:
    if _db["CONN_MAX_AGE"]:
        raise ImproperlyConfigured(
            "DB_POOL=true replaces DB_CONN_MAX_AGE: set DB_CONN_MAX_AGE=0 (or DB_POOL=false)"
        )
    _pool_min = env_int("DB_POOL_MIN_SIZE", 1, minimum=0, maximum=1000)
    _db["OPTIONS"]["pool"] = {
        "min_size": _pool_min,
        "max_size": env_int("DB_POOL_MAX_SIZE", 10, minimum=max(_pool_min, 1), maximum=1000),
        # A request that finds every connection busy waits this long, then fails (500).
        "timeout": env_float("DB_POOL_TIMEOUT", 10.0, minimum=0.1),
        # Connections beyond min_size unused this long are closed.
        "max_idle": env_float("DB_POOL_MAX_IDLE", 60.0, minimum=1.0),
        "name": "filmstudio",
    }
DATABASES = {"default": _db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Redis: RQ queues, the provider key pool and the live event bus.
REDIS_URL = env_str("REDIS_URL")
if not REDIS_URL:
    raise ImproperlyConfigured(
        "REDIS_URL is not set: point it at Redis, or use `make run` / `make test`, "
        "which start an embedded Redis when it is unset"
    )
if urlsplit(REDIS_URL).scheme not in {"redis", "rediss", "unix"}:
    raise ImproperlyConfigured("REDIS_URL must be a redis://, rediss:// or unix:// URL")

RQ_QUEUES = {
    "default": {
        "URL": REDIS_URL,
        "DEFAULT_TIMEOUT": env_int("RQ_DEFAULT_TIMEOUT", 1800),
        "SERIALIZER": "rq.serializers.JSONSerializer",
    },
}
# Pipeline robustness: a running job's heartbeat older than this is taken as lost.
JOB_HEARTBEAT_INTERVAL = env_float("JOB_HEARTBEAT_INTERVAL", 10.0, minimum=0.05)
JOB_HEARTBEAT_TIMEOUT = env_float("JOB_HEARTBEAT_TIMEOUT", 120.0, minimum=0.1)
JOB_AUTO_RETRIES = env_int("JOB_AUTO_RETRIES", 3, minimum=0, maximum=20)
# A job whose worker keeps dying (crash, OOM kill) is resumed this many times, then failed.
JOB_MAX_ATTEMPTS = env_int("JOB_MAX_ATTEMPTS", 6, minimum=1, maximum=100)
WATCHDOG_INTERVAL = env_float("WATCHDOG_INTERVAL", 15.0, minimum=0.1)
# Provider calls a single step runs at once (portraits, keyframes).
STEP_CONCURRENCY = env_int("STEP_CONCURRENCY", 4, minimum=1, maximum=64)
# Clip submissions and deliveries one worker job takes on at once, side by side on its threads.
JOB_BATCH_SIZE = env_int("JOB_BATCH_SIZE", 5, minimum=1, maximum=64)

# Live events: worker processes publish through Redis; events are stored for Last-Event-ID.
EVENTSTREAM_REDIS = redis_connection_kwargs(REDIS_URL)
# The replay log: recent events in Redis, all in the database in batches (filmstudio.eventstore).
EVENTSTREAM_STORAGE_CLASS = "filmstudio.eventstore.EventStore"
# Seconds a live event may wait for the replay log when no job or request ends (director turns;
# a timer thread per process, 0 = none), and whether a process stores what is left at exit.
EVENTS_FLUSH_INTERVAL = env_float("EVENTS_FLUSH_INTERVAL", 2.0, minimum=0.0)
EVENTS_FLUSH_AT_EXIT = env_bool("EVENTS_FLUSH_AT_EXIT", True)
EVENTSTREAM_CHANNELMANAGER_CLASS = "filmstudio.streams.OwnerChannelManager"
# Streams (project and session events, director turns) one user may hold open at once in one
# web process; one more is a 429.
MAX_STREAMS_PER_USER = env_int("MAX_STREAMS_PER_USER", 16, minimum=1, maximum=10000)
RQ = {
    # Work enqueued inside a transaction reaches Redis when it commits (never for a rollback).
    "COMMIT_MODE": "on_db_commit",
    "JOB_CLASS": "rq.job.Job",
    "WORKER_CLASS": "generation.worker.PreloadWorker",
}
RQ_SHOW_ADMIN_LINK = True

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise warns on every request otherwise
STATICFILES_DIRS = [BASE_DIR / "static"]
WHITENOISE_USE_FINDERS = True
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(VAR_DIR / "media")))
# S3-compatible storage (AWS S3, Supabase Storage, MinIO) when a bucket is named, so web and
# workers on several machines share media; else the local MEDIA_ROOT.
MEDIA_S3_BUCKET = env_str("MEDIA_S3_BUCKET")
if MEDIA_S3_BUCKET:
    _default_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": MEDIA_S3_BUCKET,
            "endpoint_url": env_str("MEDIA_S3_ENDPOINT_URL") or None,
            "region_name": env_str("MEDIA_S3_REGION") or None,
            "access_key": env_str("MEDIA_S3_ACCESS_KEY_ID") or None,
            "secret_key": env_str("MEDIA_S3_SECRET_ACCESS_KEY") or None,
            "querystring_expire": env_int("BLOB_URL_MAX_AGE", 3600, minimum=60),
            "file_overwrite": False,
            "signature_version": "s3v4",  # SigV2 presigned URLs are refused by most stores
            "default_acl": None,
        },
    }
else:
    _default_storage = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(MEDIA_ROOT)},
    }
STORAGES = {
    "default": _default_storage,
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# Request bodies over this size get a JSON 413 (filmstudio.middleware), refused at the ASGI
# layer before they are read. Paths that take more say so: `/path/prefix=bytes` pairs, `*` for
# one segment, e.g. "/api/projects/*/music=20971520" (the music upload has its own allowance,
# MUSIC_MAX_BYTES).
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("MAX_BODY_BYTES", 1024 * 1024, minimum=1024)
MAX_BODY_BYTES_BY_PATH = env_path_sizes("MAX_BODY_BYTES_BY_PATH")

REST_FRAMEWORK = {
    # Token first: otherwise an anonymous request is answered 403 instead of 401. DRF's token
    # authentication with its query compiled once (filmstudio.auth).
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "filmstudio.auth.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "filmstudio.api.Pagination",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "filmstudio.api.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "FilmStudio API",
    "DESCRIPTION": "Turn a film idea into a finished film: projects, cast approval, "
    "generation jobs, live events and the director assistant.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "PREPROCESSING_HOOKS": ["filmstudio.api.drop_trailing_slash_duplicates"],
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "filmstudio.api.document_error_responses",
    ],
    "ENUM_NAME_OVERRIDES": {
        "ProjectStatusEnum": "projects.models.Project.Status",
        "CharacterStatusEnum": "projects.models.Character.Status",
        "UnitStatusEnum": "projects.models.UnitStatus",
        "VideoStatusEnum": "projects.models.Video.Status",
        "JobStatusEnum": "generation.models.GenerationJob.Status",
        "JobTypeEnum": "generation.models.GenerationJob.Type",
    },
}

# HTTPS: on by default whenever DEBUG is off; behind a TLS-terminating proxy set
# SECURE_PROXY_SSL_HEADER_ENABLED so Django trusts X-Forwarded-Proto.
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31536000, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", not DEBUG)
if env_bool("SECURE_PROXY_SSL_HEADER_ENABLED", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
X_FRAME_OPTIONS = "DENY"

# Media and the film format.
BLOB_URL_MAX_AGE = env_int("BLOB_URL_MAX_AGE", 3600, minimum=60)
MEDIA_BASE_HEIGHT = env_int("MEDIA_BASE_HEIGHT", 720, minimum=90, maximum=2160)
MEDIA_FPS = env_int("MEDIA_FPS", 24, minimum=1, maximum=60)
FFMPEG_TIMEOUT = env_float("FFMPEG_TIMEOUT", 600.0, minimum=1.0)

# AI providers: "auto" picks gemini/fal when their keys are present, else the offline `local`.
GEMINI_API_KEYS = env_list("GEMINI_API_KEYS")
FAL_KEY = env_str("FAL_KEY")
# Gemini writes, draws and directs; fal only animates (generation/providers/__init__.py).
_gemini_kinds = {"auto", "local", "gemini"}
TEXT_PROVIDER = env_choice("TEXT_PROVIDER", "auto", _gemini_kinds)
IMAGE_PROVIDER = env_choice("IMAGE_PROVIDER", "auto", _gemini_kinds)
VIDEO_PROVIDER = env_choice("VIDEO_PROVIDER", "auto", {"auto", "local", "fal"})
DIRECTOR_PROVIDER = env_choice("DIRECTOR_PROVIDER", "auto", _gemini_kinds)
# Who speaks the dialogue: Gemini's TTS, or the offline eSpeak NG stand-in (`local`).
SPEECH_PROVIDER = env_choice("SPEECH_PROVIDER", "auto", _gemini_kinds)

GEMINI_TEXT_MODEL = env_str("GEMINI_TEXT_MODEL", "gemini-2.5-flash")
GEMINI_IMAGE_MODEL = env_str("GEMINI_IMAGE_MODEL", "gemini-2.5-flash-image")
GEMINI_DIRECTOR_MODEL = env_str("GEMINI_DIRECTOR_MODEL", "gemini-2.5-flash")
# The 2.5 preview TTS models shut down on 2026-12-18; 3.8 Flash-Lite TTS is their GA successor.
GEMINI_SPEECH_MODEL = env_str("GEMINI_SPEECH_MODEL", "gemini-3.8-flash-lite-tts")
ESPEAK_BINARY = env_str("ESPEAK_BINARY", "espeak-ng")
# An uploaded music track: at most this many bytes and seconds.
MUSIC_MAX_BYTES = env_int("MUSIC_MAX_BYTES", 20 * 1024 * 1024, minimum=1024)
MUSIC_MAX_SECONDS = env_int("MUSIC_MAX_SECONDS", 600, minimum=1)
# Only for tests and proxies: where the google-genai SDK sends requests.
GEMINI_BASE_URL = env_str("GEMINI_BASE_URL")
# Quotas are per Google Cloud project and model: keys add capacity only across projects.
GEMINI_RPM = env_int("GEMINI_RPM", 60, minimum=1)
GEMINI_TIMEOUT = env_float("GEMINI_TIMEOUT", 120.0, minimum=1.0)
PROVIDER_MAX_ATTEMPTS = env_int("PROVIDER_MAX_ATTEMPTS", 5, minimum=1, maximum=20)
PROVIDER_BACKOFF_BASE = env_float("PROVIDER_BACKOFF_BASE", 1.0)
PROVIDER_BACKOFF_CAP = env_float("PROVIDER_BACKOFF_CAP", 30.0)
FAL_MODEL = env_str("FAL_MODEL", "fal-ai/kling-video/v2.1/standard/image-to-video")
# Only for tests: fal's queue URL format and the webhook signing keys (JWKS) URL.
FAL_QUEUE_URL_FORMAT = env_str("FAL_QUEUE_URL_FORMAT")
FAL_JWKS_URL = env_str("FAL_JWKS_URL", "https://rest.alpha.fal.ai/.well-known/jwks.json")
FAL_TIMEOUT = env_float("FAL_TIMEOUT", 60.0, minimum=1.0)
# Webhooks are accepted only when signed for this fal account (the X-Fal-Webhook-User-Id of
# fal's deliveries); unset, any fal account's signed webhook is.
FAL_WEBHOOK_USER_ID = env_str("FAL_WEBHOOK_USER_ID")
# Clips are fetched only over https from these hosts ("*." for any under one), never following
# a redirect, and refused beyond FAL_MAX_DOWNLOAD_BYTES.
FAL_MEDIA_HOSTS = env_list("FAL_MEDIA_HOSTS", ["fal.media", "*.fal.media"])
FAL_MAX_DOWNLOAD_BYTES = env_int("FAL_MAX_DOWNLOAD_BYTES", 200 * 1024 * 1024, minimum=1024)
# Public base URL of this site; when set, fal calls back to /api/webhooks/fal instead of polling.
PUBLIC_BASE_URL = env_str("PUBLIC_BASE_URL").rstrip("/")
VIDEO_POLL_INTERVAL = env_float("VIDEO_POLL_INTERVAL", 5.0, minimum=0.05)

MEDIA_S3_SECRET_ACCESS_KEY = env_str("MEDIA_S3_SECRET_ACCESS_KEY")
# Settings whose values the log filter masks (filmstudio.logging); it adds the passwords of the
# database and Redis connections in use (DATABASES, RQ_QUEUES, EVENTSTREAM_REDIS) itself.
SECRET_SETTINGS = ("SECRET_KEY", "GEMINI_API_KEYS", "FAL_KEY", "MEDIA_S3_SECRET_ACCESS_KEY")

LOG_LEVEL = env_choice("LOG_LEVEL", "info", {"debug", "info", "warning", "error"}).upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact": {"()": "filmstudio.logging.RedactSecretsFilter"}},
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["redact"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        # uvicorn's access log, through the same filter: signed URLs lose their `?sig=`.
        "uvicorn.access": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
}

# Money (generation.costs). The rate card is data: generation/rates.json, with rows replaced or
# added by a JSON file of the same shape (RATE_CARD_FILE). Per-user limits: these defaults, or
# what staff set per user in the admin (UserLimit).
RATE_CARD_FILE = env_str("RATE_CARD_FILE", "")
USER_DAILY_SPEND_USD = env_float("USER_DAILY_SPEND_USD", 50.0)
USER_MAX_ACTIVE_PROJECTS = env_int("USER_MAX_ACTIVE_PROJECTS", 3, minimum=1, maximum=1000)
# A budget above this is taken for a typing mistake (400).
MAX_BUDGET_USD = env_float("MAX_BUDGET_USD", 100000.0, minimum=1.0)
# Request rates (DRF throttles, per user or per client address; 429 with Retry-After).
THROTTLE_JOBS = env_str("THROTTLE_JOBS", "60/min")
THROTTLE_TOKEN = env_str("THROTTLE_TOKEN", "10/min")
THROTTLE_LOGIN = env_str("THROTTLE_LOGIN", "10/min")
REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] = {
    "jobs": THROTTLE_JOBS,
    "token": THROTTLE_TOKEN,
    "login": THROTTLE_LOGIN,
}
# Throttle counts live in Redis, shared by every web process.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "filmstudio",
    }
}

# Character consistency (generation.consistency): a keyframe the judge scores below this is drawn
# again with the judge's issues, at most this many more times (the best try stays current).
MIN_CONSISTENCY = env_float("MIN_CONSISTENCY", 0.6)
CONSISTENCY_MAX_TRIES = env_int("CONSISTENCY_MAX_TRIES", 2, minimum=0, maximum=5)

# Director
# Cost guards: message size, turns per user per minute, tool rounds per turn, answer length
# (which includes thinking tokens on Gemini 2.5).
DIRECTOR_MAX_MESSAGE_CHARS = env_int("DIRECTOR_MAX_MESSAGE_CHARS", 4000, minimum=1)
DIRECTOR_TURNS_PER_MINUTE = env_int("DIRECTOR_TURNS_PER_MINUTE", 20, minimum=1)
DIRECTOR_MAX_TOOL_ROUNDS = env_int("DIRECTOR_MAX_TOOL_ROUNDS", 4, minimum=1, maximum=20)
DIRECTOR_MAX_OUTPUT_TOKENS = env_int("DIRECTOR_MAX_OUTPUT_TOKENS", 4096, minimum=64)
# Earlier turns of a session sent to the model with each new one.
DIRECTOR_HISTORY_TURNS = env_int("DIRECTOR_HISTORY_TURNS", 10, minimum=0, maximum=100)
# Turns run in a thread pool of this size; more wait for a free thread (their stream is open).
DIRECTOR_MAX_CONCURRENT_TURNS = env_int("DIRECTOR_MAX_CONCURRENT_TURNS", 16, minimum=1)
# A turn still "running" after this long was lost (its process died); the session moves on.
DIRECTOR_TURN_TIMEOUT = env_float("DIRECTOR_TURN_TIMEOUT", 300.0, minimum=1.0)
# A comment line on quiet streams, so proxies keep them open.
DIRECTOR_KEEPALIVE = env_float("DIRECTOR_KEEPALIVE", 15.0, minimum=0.05)
# Pause between the local director's deltas, so its answers read as streamed in demos.
DIRECTOR_LOCAL_DELAY = env_float("DIRECTOR_LOCAL_DELAY", 0.02)
# Agent runs (director.runs): a paid step the run would take by itself whose estimate is over
# this many USD stops at a `spend` checkpoint for the person's decision (cast and storyboard
# are checkpoints anyway); a run that advances more than AGENT_MAX_ADVANCES times fails (a
# planner going round in circles); the offline planner pauses this long per tool call (demos).
AGENT_CONFIRM_ABOVE_USD = env_float("AGENT_CONFIRM_ABOVE_USD", 1.0, minimum=0.0)
AGENT_MAX_ADVANCES = env_int("AGENT_MAX_ADVANCES", 60, minimum=1)
AGENT_LOCAL_DELAY = env_float("AGENT_LOCAL_DELAY", 0.0)
# OpenAPI names for the director's enums (else generic ones such as PageEnum, KindEnum).
SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"].update(
    {
        "DirectorPageEnum": "director.pages.PAGE_IDS",
        "DirectorToolKindEnum": "director.tools.TOOL_KINDS",
        "DirectorEventEnum": "director.streaming.TURN_EVENTS",
        "DirectorRoleEnum": "director.models.DirectorMessage.Role",
        "AgentRunStatusEnum": "director.models.AgentRun.Status",
        "AgentRunDecisionEnum": "director.services.DECISIONS",
        "AgentRunCheckpointKindEnum": "director.runs.CHECKPOINT_KINDS",
        "AgentRunEventTypeEnum": "director.runs.RUN_EVENTS",
    }
)

# Pages
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/studio/"
