"""The one settings module: the same code in the quickstart and in production (DESIGN.md §3).

Everything an administrator can change comes from the environment through the strict readers
in explorer/env.py; each variable is listed with its type, default and meaning in
docs/configuration.md (keep the two in step: tests/deploy checks deploy files against it).
With no DATABASE_URL / REDIS_URL, the URLs point at the embedded servers under var/, which
manage.py starts (explorer/core/embedded.py); importing this module starts nothing.
"""

from __future__ import annotations

import secrets
import sys
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured
from redis.backoff import NoBackoff
from redis.retry import Retry

from explorer.core import embedded
from explorer.env import (
    env_bool,
    env_float,
    env_int,
    env_list,
    env_str,
    parse_database_url,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = embedded.var_dir()  # EXPLORER_VAR_DIR

# --- core ------------------------------------------------------------------------------------

DEBUG: bool = env_bool("DEBUG", False)

# Production sets SECRET_KEY (or SECRET_KEY_FILE). The quickstart keeps a random key in
# var/secret_key so sessions survive restarts; `check --deploy` warns (explorer.W004) if used.
SECRET_KEY_FROM_VAR = False
SECRET_KEY: str = env_str("SECRET_KEY") or ""
if not SECRET_KEY:
    _key_file = VAR_DIR / "secret_key"
    if not _key_file.exists():
        _key_file.parent.mkdir(parents=True, exist_ok=True)
        _key_file.touch(mode=0o600)
        _key_file.write_text(secrets.token_urlsafe(50))
    SECRET_KEY = _key_file.read_text().strip()
    SECRET_KEY_FROM_VAR = True
elif len(SECRET_KEY) < 32:
    raise ImproperlyConfigured("SECRET_KEY must be at least 32 characters long.")

ALLOWED_HOSTS: list[str] = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS: list[str] = env_list("CSRF_TRUSTED_ORIGINS", [])
for _origin in CSRF_TRUSTED_ORIGINS:
    if not _origin.startswith(("http://", "https://")):
        raise ImproperlyConfigured(
            f"CSRF_TRUSTED_ORIGINS item {_origin!r} must start with http:// or https://."
        )

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "ninja",
    "explorer.core",
    "explorer.accounts",
    "explorer.saes",
    "explorer.api",
    "explorer.explanations",
    "explorer.lists",
    "explorer.search",
    "explorer.activations",
    "explorer.steering",
    "explorer.importance",
    "explorer.showcases",
    "explorer.browser",
    # The worker side's management commands (add_sae, embed_explanations), which run the
    # engine in their own process; the app itself imports no torch.
    "workers",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Right after SecurityMiddleware, as whitenoise asks: static files skip the rest.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Gzip for pages, JSON and streamed exports, never for SSE (core/compression.py). Outside
    # every middleware that makes or changes a body; static files have left by now.
    "explorer.core.compression.CompressionMiddleware",
    # After whitenoise: static files need no policy; every rendered response gets one (the
    # outage middleware's 503 pages included, hence before it).
    "explorer.core.csp.ContentSecurityPolicyMiddleware",
    # Redis or PostgreSQL unreachable: a 503 page or JSON error, logged once (core/outages.py).
    "explorer.core.outages.OutageMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Before any view or query: text PostgreSQL cannot store (a NUL) is a 400 naming the field.
    "explorer.core.middleware.UntrustedInputMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "explorer.urls"
ASGI_APPLICATION = "explorer.asgi.application"
WSGI_APPLICATION = None  # ASGI only: websockets need it (uvicorn in demo and production)

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "explorer.accounts.context_processors.accounts",
                "explorer.search.context_processors.search_scope",
            ],
        },
    },
]

# --- PostgreSQL ----------------------------------------------------------------------------------

DATABASE_URL: str = env_str("DATABASE_URL") or embedded.EmbeddedPostgres(VAR_DIR).url()
DATABASES = {"default": parse_database_url(DATABASE_URL)}
# Seconds to keep a connection open; 0 under ASGI unless a pooler sits in front (each request
# runs in a thread, so persistent connections multiply with threads).
DATABASES["default"]["CONN_MAX_AGE"] = env_int("DATABASE_CONN_MAX_AGE", 0, minimum=0)
# A kept connection is checked before a request reuses it, so one that died with a database
# restart fails no request (nothing to check with CONN_MAX_AGE 0).
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# A pool of connections per process (psycopg_pool, Django's own support): a request borrows one
# instead of opening its own, which costs a server process fork and ~5 ms each time. On by
# default in the web process (the one that imports explorer/asgi.py, which is being imported
# while these settings load), off in every other: Celery's prefork workers must not inherit a
# pool's sockets and threads, and commands have no requests to share connections between. A
# borrowed connection is checked first, so a database restart fails no request; while the
# database is down, pages answer the outage page at once (core/outages.py) rather than wait
# DATABASE_POOL_TIMEOUT_S for a connection.
WEB_PROCESS = "explorer.asgi" in sys.modules
DATABASE_POOL: bool = env_bool(
    "DATABASE_POOL", WEB_PROCESS and not DATABASES["default"]["CONN_MAX_AGE"]
)
DATABASE_POOL_MAX: int = env_int("DATABASE_POOL_MAX", 20, minimum=1)
DATABASE_POOL_TIMEOUT_S: float = env_float("DATABASE_POOL_TIMEOUT_S", 5.0, minimum=0.1)
if DATABASE_POOL:
    if DATABASES["default"]["CONN_MAX_AGE"]:
        raise ImproperlyConfigured(
            "DATABASE_POOL pools connections itself: leave DATABASE_CONN_MAX_AGE at 0."
        )
    # CONN_HEALTH_CHECKS (above) makes Django give the pool its connection check.
    DATABASES["default"]["OPTIONS"]["pool"] = {
        "min_size": 1,
        "max_size": DATABASE_POOL_MAX,
        "timeout": DATABASE_POOL_TIMEOUT_S,
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: Celery broker, channel layer, cache ---------------------------------------------------

REDIS_URL: str = env_str("REDIS_URL") or embedded.EmbeddedRedis(VAR_DIR).url()
if not REDIS_URL.startswith(("redis://", "rediss://")):
    raise ImproperlyConfigured(
        f"REDIS_URL must start with redis:// or rediss://; got {REDIS_URL!r}."
    )


def channel_layer_host(url: str) -> dict:
    """channels_redis waits on Redis with a 5 s blocking pop; redis-py 8 gives connections a
    5 s socket timeout too, so an idle consumer died with TimeoutError (channels_redis#422).
    The socket timeout must exceed the pop's."""
    return {"address": url, "socket_timeout": 10}


# Connections a web process opens to Redis at most, per pool: the live-steering pool shared by
# every socket of the process, the channel layer's, and the cache's (one per thread). A caller
# past the bound waits up to REDIS_POOL_TIMEOUT_S for a free connection, then gets a 503 or an
# error frame (explorer/core/redis_clients.py). 200 steering sockets fit in 10.
REDIS_MAX_CONNECTIONS: int = env_int("REDIS_MAX_CONNECTIONS", 50, minimum=2)
REDIS_POOL_TIMEOUT_S: float = env_float("REDIS_POOL_TIMEOUT_S", 5.0, minimum=0.1)

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "explorer.core.redis_clients.ChannelLayer",
        # Carries index progress events (a few per second per run) and the websocket ping;
        # steering frames go over Redis pub/sub instead (explorer/steering/streams.py says why).
        "CONFIG": {"hosts": [channel_layer_host(REDIS_URL)], "capacity": 200, "expiry": 30},
    }
}
CACHES = {
    "default": {
        # Django's Redis cache with one client per process, not one per request.
        "BACKEND": "explorer.core.redis_clients.RedisCache",
        "LOCATION": REDIS_URL,
        "OPTIONS": {
            "pool_class": "redis.BlockingConnectionPool",
            "max_connections": REDIS_MAX_CONNECTIONS,
            "timeout": REDIS_POOL_TIMEOUT_S,
            # A connection that died with a Redis restart is replaced, not a failed request.
            "retry": Retry(NoBackoff(), 1),
        },
    }
}
# Celery reads CELERY_* from here lazily, in the web's client (explorer/core/tasks.py) and in
# the worker app; the worker's tunables live in workers/celery.py.
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL

# Live model queues (`live.<model>`) this deployment serves; a model without a consumer on its
# queue is reported by /healthz and explorer.W005.
EXPLORER_LIVE_MODELS: list[str] = env_list("EXPLORER_LIVE_MODELS", ["demo"])
# Activation tests ("test with your text", top features for a text) run on a live worker:
# the longest text accepted and how long a page waits for the worker's answer.
EXPLORER_TEST_TEXT_MAX_CHARS: int = env_int("EXPLORER_TEST_TEXT_MAX_CHARS", 2000, minimum=1)
EXPLORER_LIVE_TIMEOUT_S: float = env_float("EXPLORER_LIVE_TIMEOUT_S", 30.0, minimum=0.5)
# A `text:` search over a whole model encodes the text with each of its SAEs in one task: at
# most this many SAEs (each is loaded on the worker, and each adds an encode to the request).
EXPLORER_TEXT_SEARCH_MAX_SAES: int = env_int("EXPLORER_TEXT_SEARCH_MAX_SAES", 32, minimum=1)
# Bytes of non-zero activations an index shard keeps in memory so the chosen examples need no
# second forward pass (workers/engine/candidates.py); past it the merge re-runs those windows.
INDEX_LOG_MAX_BYTES: int = env_int("INDEX_LOG_MAX_BYTES", 4 << 30, minimum=0)
# A worker on the `index` queue lays out a small feature map when it starts, so numba compiles
# UMAP's kernels then (about a minute of CPU) rather than in front of the first real map.
INDEX_WARM_MAP: bool = env_bool("INDEX_WARM_MAP", True)
# Held-out tokens the SAE evaluation queued after every finished index run reads; 0: none.
SAE_EVAL_AFTER_INDEX_TOKENS: int = env_int("SAE_EVAL_AFTER_INDEX_TOKENS", 100_000, minimum=0)
# Steering showcases (explorer/showcases, workers/showcases.py): after an SAE is indexed, this
# many candidate features (the top by density × top logit effect) are steered and scored on the
# `index` queue, and the best SHOWCASE_COUNT are linked from the home page; 0 candidates = none.
SHOWCASE_CANDIDATES: int = env_int("SHOWCASE_CANDIDATES", 16, minimum=0)
SHOWCASE_COUNT: int = env_int("SHOWCASE_COUNT", 4, minimum=1)
# Queues /healthz requires a live consumer on (shell patterns): batch indexing and any live model.
HEALTHZ_REQUIRED_QUEUES: list[str] = env_list("HEALTHZ_REQUIRED_QUEUES", ["index", "live.*"])
HEALTHZ_INSPECT_TIMEOUT: float = env_float("HEALTHZ_INSPECT_TIMEOUT", 1.0, minimum=0.05)
HEALTHZ_CACHE_SECONDS: float = env_float("HEALTHZ_CACHE_SECONDS", 2.0, minimum=0.0)

# --- who a client is, and limits on expensive work (explorer/core/clients.py, limits.py) ---------
# Proxies whose X-Forwarded-For is believed (addresses or CIDR networks, e.g. the network the
# TLS proxy or Ingress controller runs in). Empty: every peer is the client itself, and a
# forwarded header from anyone is ignored (behind a proxy, every client then shares its address).
TRUSTED_PROXIES: list[str] = env_list("TRUSTED_PROXIES", [])
try:
    from explorer.core.clients import parse_networks

    parse_networks(TRUSTED_PROXIES)
except ValueError as _exc:
    raise ImproperlyConfigured(str(_exc)) from None
# Limits count per client: a signed-in user by account, anyone else by address.
# Exports stream a whole SAE (hundreds of MB for the demo's examples): by default only for
# accounts (session or API key); true opens them to anonymous clients too.
EXPORTS_OPEN: bool = env_bool("EXPORTS_OPEN", False)
EXPORT_RATE_LIMIT: int = env_int("EXPORT_RATE_LIMIT", 12, minimum=1)  # exports started ...
EXPORT_RATE_WINDOW_S: int = env_int("EXPORT_RATE_WINDOW_S", 3600, minimum=1)  # ... per window
EXPORT_CONCURRENCY: int = env_int("EXPORT_CONCURRENCY", 1, minimum=1)  # running at once, each
EXPORT_MAX_RUNNING: int = env_int("EXPORT_MAX_RUNNING", 4, minimum=1)  # ... and for everyone
# Activation tests and `text:` searches not answered from the cache (each runs the model on a
# live worker, which also serves steering): per client per window, and in flight at once.
LIVE_TEST_RATE_LIMIT: int = env_int("LIVE_TEST_RATE_LIMIT", 60, minimum=1)
LIVE_TEST_RATE_WINDOW_S: int = env_int("LIVE_TEST_RATE_WINDOW_S", 60, minimum=1)
LIVE_TEST_CONCURRENCY: int = env_int("LIVE_TEST_CONCURRENCY", 2, minimum=1)
# Importance jobs queued for single features (open to everyone), and whole-SAE runs (accounts),
# per client per IMPORTANCE_RATE_WINDOW_S.
IMPORTANCE_RATE_LIMIT: int = env_int("IMPORTANCE_RATE_LIMIT", 30, minimum=1)
IMPORTANCE_BULK_RATE_LIMIT: int = env_int("IMPORTANCE_BULK_RATE_LIMIT", 4, minimum=1)
IMPORTANCE_RATE_WINDOW_S: int = env_int("IMPORTANCE_RATE_WINDOW_S", 3600, minimum=1)
# Steering vectors built from contrast pairs (CAA, up to STEER_MAX_VECTOR_PAIRS forward passes
# each on the live worker), per account per window.
STEER_VECTOR_RATE_LIMIT: int = env_int("STEER_VECTOR_RATE_LIMIT", 20, minimum=1)
STEER_VECTOR_RATE_WINDOW_S: int = env_int("STEER_VECTOR_RATE_WINDOW_S", 3600, minimum=1)

# --- semantic search (explorer/search, workers/embeddings.py) -----------------------------------
# A query's embedding is computed by a worker (never here: no torch in the web process). The
# queue its task goes to, and how long a search waits for it before answering with text
# matches only (saying so). By default the first live model's queue: interactive work, never
# stuck behind an indexing job or an LLM batch (it is ~10 ms of CPU per query).
EXPLORER_EMBED_QUEUE: str = env_str("EXPLORER_EMBED_QUEUE") or (
    f"live.{EXPLORER_LIVE_MODELS[0]}" if EXPLORER_LIVE_MODELS else "explain"
)
EXPLORER_EMBED_TIMEOUT_S: float = env_float("EXPLORER_EMBED_TIMEOUT_S", 3.0, minimum=0.1)
# Nearest explanations less similar than this (cosine, -1..1) are not shown: every query has
# nearest neighbours, and below about 0.3 all-MiniLM-L6-v2's are unrelated texts.
EXPLORER_SEMANTIC_MIN_SIMILARITY: float = env_float(
    "EXPLORER_SEMANTIC_MIN_SIMILARITY", 0.3, minimum=-1.0
)

# --- auth -----------------------------------------------------------------------------------------

LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "core:home"
LOGOUT_REDIRECT_URL = "core:home"
# Anyone may create an account at /accounts/signup/. Turn off for a private instance: the
# sign-in page then says to ask the administrator (who runs `manage.py createsuperuser` or
# adds users in /admin/).
EXPLORER_SIGNUP_OPEN: bool = env_bool("EXPLORER_SIGNUP_OPEN", True)
# Sign-in throttling (explorer/accounts/throttle.py): after this many failed sign-ins for one
# username, or from one client address, within EXPLORER_LOGIN_WINDOW_S seconds of the first,
# sign-ins are refused (429) until those seconds are over. The address limit is higher: many
# people may share one address behind a NAT.
EXPLORER_LOGIN_FAILURES_PER_ACCOUNT: int = env_int(
    "EXPLORER_LOGIN_FAILURES_PER_ACCOUNT", 10, minimum=1
)
EXPLORER_LOGIN_FAILURES_PER_ADDRESS: int = env_int(
    "EXPLORER_LOGIN_FAILURES_PER_ADDRESS", 50, minimum=1
)
EXPLORER_LOGIN_WINDOW_S: int = env_int("EXPLORER_LOGIN_WINDOW_S", 900, minimum=1)
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- security: secure by default; the quickstart (plain http on localhost) sets HTTPS=false -----

# The site is reached over HTTPS (directly or behind a TLS-terminating proxy).
HTTPS: bool = env_bool("HTTPS", not DEBUG)
SECURE_SSL_REDIRECT: bool = env_bool("SECURE_SSL_REDIRECT", HTTPS)
# Probes (load balancer, kubelet) call /healthz over plain HTTP inside the cluster.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_HSTS_SECONDS: int = env_int("SECURE_HSTS_SECONDS", 31_536_000 if HTTPS else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS: bool = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
# Lets the domain be submitted to browsers' preload lists (Django warns, security.W021, if off).
SECURE_HSTS_PRELOAD: bool = env_bool("SECURE_HSTS_PRELOAD", HTTPS)
# Behind a proxy that terminates TLS, trust its X-Forwarded-Proto (only if it always sets it).
if env_bool("TRUST_X_FORWARDED_PROTO", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
# Content-Security-Policy of every rendered response (explorer/core/csp.py): scripts from this
# origin only (no inline script, no eval); inline style attributes are allowed, since
# server-rendered token strips colour each token with one, but <style> elements are not.
# 'self' in connect-src covers the same-origin websocket (ws:/wss:) too.
SECURE_CSP: dict[str, list[str]] = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'", "'unsafe-inline'"],
    "style-src-elem": ["'self'"],
    "img-src": ["'self'", "data:"],
    "connect-src": ["'self'"],
    "object-src": ["'none'"],
    "base-uri": ["'self'"],
    "form-action": ["'self'"],
    "frame-ancestors": ["'none'"],
}
# Who may frame the feature embed (`?embed=1`): CSP frame-ancestors sources, e.g.
# "https://blog.example.org"; every site by default, as an embed is meant to be shared.
CSP_EMBED_FRAME_ANCESTORS: list[str] = env_list("CSP_EMBED_FRAME_ANCESTORS", ["*"])

# --- static files ---------------------------------------------------------------------------------

STATIC_URL = "/static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT") or BASE_DIR / "staticfiles")
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise warns about a missing one
FRONTEND_DIST = Path(env_str("FRONTEND_DIST") or BASE_DIR / "frontend" / "dist")  # the Vite build
# collectstatic fails on a missing STATICFILES_DIRS entry; an empty dist means "not built yet".
FRONTEND_DIST.mkdir(parents=True, exist_ok=True)
STATICFILES_DIRS = [FRONTEND_DIST]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # Hashed names + gzip; whitenoise then serves them with a one-year immutable Cache-Control.
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
WHITENOISE_MAX_AGE = 3600  # unhashed files (favicon etc.); hashed ones are cached for a year

# --- explanations: the LLM explainer and judge ------------------------------------------
# Any OpenAI-compatible chat endpoint (POST {EXPLAINER_BASE_URL}/chat/completions): OpenAI,
# vLLM, llama.cpp server, Ollama's /v1. Unset = offline only (offline labels, offline proxy scores).
EXPLAINER_BASE_URL: str | None = env_str("EXPLAINER_BASE_URL")
if EXPLAINER_BASE_URL is not None and not EXPLAINER_BASE_URL.startswith(("http://", "https://")):
    raise ImproperlyConfigured(
        f"EXPLAINER_BASE_URL={EXPLAINER_BASE_URL!r} must start with http:// or https://."
    )
EXPLAINER_MODEL: str = env_str("EXPLAINER_MODEL", "gpt-4o-mini")  # model id sent to the endpoint
EXPLAINER_API_KEY: str | None = env_str(
    "EXPLAINER_API_KEY"
)  # Bearer token (or EXPLAINER_API_KEY_FILE)
EXPLAINER_TIMEOUT_S: float = env_float("EXPLAINER_TIMEOUT_S", 60.0, minimum=0.1)  # per HTTP call
EXPLAINER_BATCH_SIZE: int = env_int(
    "EXPLAINER_BATCH_SIZE", 20, minimum=1
)  # features per Celery task
# Retries of one HTTP call (timeouts, 429, 5xx) before the job is stored as failed; waits grow
# EXPLAINER_BACKOFF_S * 2**n, capped at EXPLAINER_MAX_BACKOFF_S; a 429's Retry-After wins.
EXPLAINER_MAX_RETRIES: int = env_int("EXPLAINER_MAX_RETRIES", 4, minimum=0)
EXPLAINER_BACKOFF_S: float = env_float("EXPLAINER_BACKOFF_S", 1.0, minimum=0.0)
EXPLAINER_MAX_BACKOFF_S: float = env_float("EXPLAINER_MAX_BACKOFF_S", 60.0, minimum=0.0)
# Contexts per side (activating / non-activating) for a detection score.
EXPLAINER_SCORE_SAMPLES: int = env_int("EXPLAINER_SCORE_SAMPLES", 10, minimum=1)

# --- misc -----------------------------------------------------------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

LOG_LEVEL: str = (env_str("LOG_LEVEL") or "INFO").upper()
if LOG_LEVEL not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
    raise ImproperlyConfigured(
        f"LOG_LEVEL={LOG_LEVEL!r} must be DEBUG, INFO, WARNING, ERROR or CRITICAL."
    )
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
}

NINJA_PAGINATION_PER_PAGE = 50
