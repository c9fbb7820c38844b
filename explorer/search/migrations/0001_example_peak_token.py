"""Search "features by token": an expression index on the token where each top example peaks.

Why an expression index on saes_example rather than a table of our own: it is maintained by
PostgreSQL on every insert and delete (indexing needs no extra step, and re-indexing an SAE
cannot leave it stale), and it is small (two ints per top example). Queries must spell the
expression exactly as below (explorer/search/selectors.py `PEAK_TOKEN_SQL`) for the planner
to use it. PostgreSQL arrays are 1-based; max_position is 0-based.
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("saes", "0001_initial")]  # noqa: RUF012 (Django migration convention)

    operations = [  # noqa: RUF012
        migrations.RunSQL(
            sql="CREATE INDEX IF NOT EXISTS search_example_peak_token ON saes_example "
                "((token_ids[max_position + 1]), feature_id) WHERE kind = 'top'",
            reverse_sql="DROP INDEX IF EXISTS search_example_peak_token",
        ),
    ]
