"""The JSON API at /api/v1 (OpenAPI docs at /api/v1/docs).

Every endpoint goes through `ReadOpenWriteAccount` (reads open, writes need an account) and
every error has one shape (explorer/api/errors.py). Endpoints stay thin: they call services
and selectors.
"""

from __future__ import annotations

from datetime import datetime

from django.http import HttpRequest
from ninja import NinjaAPI, Schema, Status, Swagger

from explorer.accounts import selectors as account_selectors
from explorer.accounts import services as account_services
from explorer.accounts.permissions import ReadOpenWriteAccount
from explorer.api import errors
from explorer.api.schemas import StrictSchema, error_responses
from explorer.core.health import health_report

# Every resource's endpoints: a module with a `router` whose paths are absolute under /api/v1,
# each mounted the same way (by dotted path), in the order the OpenAPI docs list them.
ROUTERS = (
    "explorer.api.catalogue",
    "explorer.api.features",
    "explorer.api.search",
    "explorer.api.lists",
    "explorer.api.activations",
    "explorer.api.export",
    "explorer.steering.api",
    "explorer.api.explanations",
    "explorer.api.importance",
)

api = NinjaAPI(
    title="SAE Feature Explorer API",
    version="1",
    urls_namespace="api-v1",
    description=(
        "Reads are open; writes need an account (session or `Authorization: Bearer <key>`), "
        "and so do exports unless the site sets EXPORTS_OPEN. "
        'Errors are `{"error": {"message", "code"}}`. Expensive endpoints (exports, activation '
        "tests, `text:` searches, importance jobs, steering) are limited per client (an "
        "account, else an address): past a limit, 429 with a `Retry-After` header and "
        "`retry_after` (seconds) in the error. URLs have no trailing slash: "
        "a GET with one redirects to the URL without it; any other unknown URL is a JSON 404."
    ),
    auth=ReadOpenWriteAccount(),
    # Swagger UI runs from django-ninja's static files ("ninja" is an installed app), so the
    # page lives under the site's Content-Security-Policy. Its validator badge would load an
    # image from validator.swagger.io (blocked by img-src, and it would tell a third party the
    # schema's URL): off.
    docs=Swagger(settings={"validatorUrl": None}),
)
errors.install(api)
for module in ROUTERS:
    api.add_router("", f"{module}.router")

ERRORS = error_responses(400, 401, 403, 404, 422)


class HealthOut(Schema):
    status: str
    database: str
    redis: str
    queues: dict[str, list[str]]
    missing_queues: list[str]


class MeOut(Schema):
    authenticated: bool
    username: str | None
    auth: str | None  # "session", "api_key" or null


class ApiKeyIn(StrictSchema):
    name: str


class ApiKeyOut(Schema):
    id: int
    name: str
    prefix: str
    created: datetime
    last_used: datetime | None
    revoked: datetime | None


class ApiKeyCreatedOut(ApiKeyOut):
    key: str  # shown once; only its digest is stored


@api.get("/health", response={200: HealthOut, 503: HealthOut}, summary="Service health")
def health(request: HttpRequest):
    body, healthy = health_report()
    return Status(200 if healthy else 503, body)


@api.get("/me", response={200: MeOut, **ERRORS}, summary="Who the request is authenticated as")
def me(request: HttpRequest):
    user = request.auth
    if not user.is_authenticated:
        return {"authenticated": False, "username": None, "auth": None}
    return {"authenticated": True, "username": user.get_username(), "auth": request.auth_method}


@api.get("/me/api-keys", response={200: list[ApiKeyOut], **ERRORS}, summary="Your API keys")
def api_keys(request: HttpRequest):
    if not request.auth.is_authenticated:
        return []
    return list(account_selectors.api_key_list(user=request.auth))


@api.post("/me/api-keys", response={201: ApiKeyCreatedOut, **ERRORS}, summary="Create an API key")
def api_key_create(request: HttpRequest, payload: ApiKeyIn):
    key, raw = account_services.api_key_create(user=request.auth, name=payload.name)
    return Status(201, {**ApiKeyOut.from_orm(key).model_dump(), "key": raw})


@api.delete(
    "/me/api-keys/{key_id}", response={200: ApiKeyOut, **ERRORS}, summary="Revoke an API key"
)
def api_key_revoke(request: HttpRequest, key_id: int):
    return account_services.api_key_revoke(user=request.auth, key_id=key_id)
