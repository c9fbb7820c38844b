"""explorer/core/outages.py: what counts as Redis or PostgreSQL being unreachable, what a page,
the API and the log get (the real services going away: tests/explorer/test_outages.py)."""

from __future__ import annotations

import json
import logging

import django.db.utils
import kombu.exceptions
import psycopg
import psycopg.errors
import pytest
import redis.exceptions
from django.test import RequestFactory

from explorer.core import outages


@pytest.fixture
def tracker():
    outages.tracker.reset()
    yield outages.tracker
    outages.tracker.reset()


def _raised_from(exc: BaseException, cause: BaseException) -> BaseException:
    try:
        raise exc from cause
    except BaseException as raised:  # noqa: BLE001 - we want the chained exception back
        return raised


@pytest.mark.parametrize(
    ("exc", "service"),
    [
        (redis.exceptions.ConnectionError("Error 111 connecting"), "redis"),
        (redis.exceptions.TimeoutError("Timeout reading"), "redis"),
        (redis.exceptions.ConnectionError("No connection available."), "redis"),
        (kombu.exceptions.OperationalError("broker away"), "redis"),
        (django.db.utils.OperationalError("connection failed"), "database"),
        (django.db.utils.InterfaceError("connection already closed"), "database"),
        (_raised_from(RuntimeError("wrapped"), redis.exceptions.ConnectionError()), "redis"),
        (ValueError("bad input"), None),
        (redis.exceptions.ResponseError("WRONGTYPE"), None),
        (
            _raised_from(
                django.db.utils.OperationalError("statement timeout"),
                psycopg.errors.QueryCanceled("canceling statement due to statement timeout"),
            ),
            None,
        ),
    ],
)
def test_service_of_names_the_unreachable_service_and_nothing_else(exc, service):
    assert outages.service_of(exc) == service


def test_the_log_gets_one_line_when_a_service_goes_and_one_when_it_is_back(tracker, caplog):
    caplog.set_level(logging.INFO, logger="explorer.core.outages")
    for _ in range(100):
        tracker.down("redis", redis.exceptions.ConnectionError("refused"))
    tracker.up("redis")
    tracker.up("redis")
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2, lines
    assert lines[0].startswith("Redis is unreachable (ConnectionError: refused)")
    assert lines[1].startswith("Redis is reachable again after")
    assert "100 requests or frames refused" in lines[1]
    assert all(r.exc_info is None for r in caplog.records)


def test_a_service_marked_down_is_probed_at_most_once_a_second(tracker):
    tracker.down("database")
    assert tracker.due_probes() == []  # just failed: no probe yet
    tracker._probed["database"] -= outages.PROBE_EVERY_S
    assert tracker.due_probes() == ["database"]
    assert tracker.due_probes() == []


def test_a_page_failing_on_redis_answers_a_503_page_with_retry_after(tracker):
    request = RequestFactory().get("/search/?q=bank")
    middleware = outages.OutageMiddleware(lambda r: None)
    response = middleware.process_exception(request, redis.exceptions.ConnectionError("refused"))
    assert response.status_code == 503
    assert response["Retry-After"] == str(outages.RETRY_AFTER_S)
    assert b"temporarily unavailable" in response.content
    assert b"Redis" in response.content
    assert tracker.is_down("redis")


def test_an_api_call_failing_on_the_database_answers_the_api_error_shape(tracker):
    request = RequestFactory().get("/api/v1/models")
    response = outages.OutageMiddleware(lambda r: None).process_exception(
        request, django.db.utils.OperationalError("connection failed")
    )
    assert response.status_code == 503
    assert response["Retry-After"] == str(outages.RETRY_AFTER_S)
    error = json.loads(response.content)["error"]
    assert (error["code"], error["service"]) == ("unavailable", "database")
    assert "database" in error["message"]


def test_other_failures_are_left_to_the_500_handler(tracker):
    request = RequestFactory().get("/")
    assert outages.OutageMiddleware(lambda r: None).process_exception(request, KeyError()) is None


def test_the_500_handler_answers_503_for_an_outage_it_is_handed(tracker):
    from explorer.core.views import server_error

    request = RequestFactory().get("/lists/")
    try:
        raise psycopg.OperationalError("connection refused")
    except psycopg.OperationalError:
        response = server_error(request)
    assert response.status_code == 503
    try:
        raise KeyError("x")
    except KeyError:
        assert server_error(request).status_code == 500


def test_while_the_database_is_down_pages_are_answered_without_a_view_until_a_probe_finds_it(
    tracker, db
):
    views = []

    def view(request):
        views.append(request.path)
        return "page"

    middleware = outages.OutageMiddleware(view)
    tracker.down("database")
    # Known down, probe not due: a 503 at once (with a pool a view would wait for a connection).
    response = middleware(RequestFactory().get("/api/v1/models"))
    assert response.status_code == 503 and views == []
    assert json.loads(response.content)["error"]["service"] == "database"
    # The probe is due: the database answers (it never went), so this request is served.
    tracker._probed["database"] -= outages.PROBE_EVERY_S
    assert middleware(RequestFactory().get("/lists/")) == "page"
    assert views == ["/lists/"] and not tracker.is_down("database")


def test_redis_down_leaves_pages_to_their_views(tracker):
    middleware = outages.OutageMiddleware(lambda request: "page")
    tracker.down("redis")
    assert middleware(RequestFactory().get("/")) == "page"  # most pages work without Redis
