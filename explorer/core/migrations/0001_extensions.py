"""pgvector (explanation embeddings, decoder neighbours) and pg_trgm (search) are required.

A server without them gets a CommandError, which migrate prints as one clear line.
"""

from django.core.management.base import CommandError
from django.db import migrations


class MissingExtensionError(CommandError):
    pass


def create_extensions(apps, schema_editor) -> None:
    from explorer.core.checks import REQUIRED_EXTENSIONS, missing_extensions

    connection = schema_editor.connection
    missing = missing_extensions(connection)
    if missing:
        raise MissingExtensionError(
            f"The PostgreSQL server for database {connection.settings_dict['NAME']!r} lacks the "
            f"extension(s) {', '.join(missing)}: this project requires pgvector and pg_trgm. "
            "Install pgvector on that server (e.g. the pgvector/pgvector Docker image, or the "
            "postgresql-<version>-pgvector package), or unset DATABASE_URL to use the embedded "
            "PostgreSQL."
        )
    for name in REQUIRED_EXTENSIONS:
        try:
            with connection.cursor() as cursor:
                cursor.execute(f'CREATE EXTENSION IF NOT EXISTS "{name}"')
        except Exception as exc:
            raise MissingExtensionError(
                f"Could not create extension {name} in database "
                f"{connection.settings_dict['NAME']!r}: {exc}. A superuser can run "
                f"CREATE EXTENSION {name}; there once, then migrate again."
            ) from exc


class Migration(migrations.Migration):
    initial = True
    # First of all migrations: a server without pgvector is refused before anything is created.
    run_before = [  # noqa: RUF012
        ("contenttypes", "0001_initial"),
        ("auth", "0001_initial"),
        ("admin", "0001_initial"),
        ("sessions", "0001_initial"),
    ]
    dependencies = []  # noqa: RUF012 (Django migration convention)
    operations = [migrations.RunPython(create_extensions, migrations.RunPython.noop)]  # noqa: RUF012
