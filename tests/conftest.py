"""The test suite's root: fixture plugins shared by every directory, and markers set from
what a test uses.

Fixtures used across directories live in plugin modules under tests/fixtures/, registered
here once, so no test module or conftest imports another conftest. Plain helpers (builders,
wait_until) live in plain modules: tests/helpers.py, tests/builders.py.

Markers (declared in pyproject.toml) are derived, so that `-m "not integration"` is right
without hand-marking each test:
- `e2e`: every test under tests/e2e (headless Chromium);
- `integration`: every test that uses a real service, directly or through other fixtures:
  PostgreSQL (the `django_db` marker, `db`, `transactional_db`), Redis, the Celery worker or
  the ASGI server. A test that starts such services itself is marked by hand.
"""

from __future__ import annotations

import pytest

from tests.helpers import REPO

pytest_plugins = [
    "tests.fixtures.services",
    "tests.fixtures.steering",
    "tests.fixtures.llm",
    "tests.fixtures.saes",
]

E2E = REPO / "tests" / "e2e"

# Each of these starts or reaches a real service; every other service fixture depends on one
# of them (e.g. django_db_setup -> django_db_modify_db_settings -> embedded_services).
SERVICE_FIXTURES = frozenset(
    {
        "embedded_services",
        "redis_url",
        "service_env",
        "django_db_setup",
        "db",
        "transactional_db",
        "celery_worker_proc",
        "live_server_url",
    }
)


# First, so that -m (applied by pytest's own hook of the same name) sees these markers.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(E2E):
            item.add_marker(pytest.mark.e2e)
        # The django_db marker requests the database at setup time, so it is not among the
        # fixture names.
        if item.get_closest_marker("django_db") or SERVICE_FIXTURES & set(
            getattr(item, "fixturenames", ())
        ):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(autouse=True)
def _fresh_limits(request: pytest.FixtureRequest) -> None:
    """A test that reaches the services starts with no rate or concurrency counted: limits
    count per client in the session's Redis, and tests share 127.0.0.1 and reuse account ids."""
    if request.node.get_closest_marker("integration"):
        request.getfixturevalue("fresh_limits")


def pytest_configure(config: pytest.Config) -> None:
    _retry_flush_on_deadlock()


def _retry_flush_on_deadlock() -> None:
    """A transactional test's teardown flushes every table (TRUNCATE). A live server's request
    or a worker's write still finishing then can hold a table the TRUNCATE waits for while
    waiting on one the TRUNCATE holds: PostgreSQL breaks the deadlock by failing one side, and
    when that is the flush the next test starts on the old rows. The flush runs in one
    transaction, so trying it again after a moment is safe."""
    import time

    from django.test import TransactionTestCase

    teardown = TransactionTestCase._fixture_teardown

    def _fixture_teardown(self: TransactionTestCase) -> None:
        for attempt in range(3):
            try:
                teardown(self)
                return _drop_example_partitions()
            except Exception as exc:
                reasons = f"{exc} {exc.__cause__} {exc.__context__}"
                if "deadlock detected" not in reasons or attempt == 2:
                    raise
                time.sleep(0.5)

    TransactionTestCase._fixture_teardown = _fixture_teardown


def _drop_example_partitions() -> None:
    """The flush truncates the tables of managed models only: the examples partitions (one
    table per SAE, created at run time) are dropped here, so no test sees another's rows."""
    from django.db import connections

    for conn in connections.all(initialized_only=True):
        with conn.cursor() as cur:
            cur.execute(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = 'saes_example'::regclass"
            )
            for (name,) in cur.fetchall():
                cur.execute(f'DROP TABLE IF EXISTS "{name}"')
