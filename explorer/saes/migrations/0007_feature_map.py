"""Map coordinates move from two columns of every feature row to one SAEMap row per SAE.

Existing coordinates are copied when an SAE's map is complete (every feature 0..n-1 laid out);
a partial map is dropped, and the next index run lays it out again. Reversible.
"""

import django.contrib.postgres.fields
import django.db.models.deletion
from django.db import migrations, models

import explorer.saes.models

FORWARD = """
INSERT INTO saes_saemap (sae_id, xs, ys, computed)
SELECT sae_id,
       array_agg(map_x::real ORDER BY "index"),
       array_agg(map_y::real ORDER BY "index"),
       now()
FROM saes_feature
GROUP BY sae_id
HAVING count(map_x) = count(*) AND count(map_y) = count(*) AND max("index") + 1 = count(*)
"""

BACKWARD = """
UPDATE saes_feature f SET map_x = m.xs[f."index" + 1], map_y = m.ys[f."index" + 1]
FROM saes_saemap m WHERE m.sae_id = f.sae_id
"""


class Migration(migrations.Migration):

    dependencies = [
        ("saes", "0006_sae_evaluation"),
    ]

    operations = [
        migrations.CreateModel(
            name="SAEMap",
            fields=[
                (
                    "sae",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        primary_key=True,
                        related_name="map",
                        serialize=False,
                        to="saes.sae",
                    ),
                ),
                (
                    "xs",
                    django.contrib.postgres.fields.ArrayField(
                        base_field=explorer.saes.models.RealField(), size=None
                    ),
                ),
                (
                    "ys",
                    django.contrib.postgres.fields.ArrayField(
                        base_field=explorer.saes.models.RealField(), size=None
                    ),
                ),
                ("computed", models.DateTimeField()),
                ("seconds", models.FloatField(blank=True, null=True)),
            ],
            options={
                "verbose_name": "SAE map",
            },
        ),
        migrations.RunSQL(FORWARD, BACKWARD),
        migrations.RemoveField(model_name="feature", name="map_x"),
        migrations.RemoveField(model_name="feature", name="map_y"),
    ]
