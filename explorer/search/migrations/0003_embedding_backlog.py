import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('saes', '0008_compact_examples'),
        ('search', '0002_explanation_embedding'),
    ]

    operations = [
        migrations.CreateModel(
            name='EmbeddingBacklog',
            fields=[
                ('sae', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, primary_key=True, related_name='embedding_backlog', serialize=False, to='saes.sae')),
                ('since', models.DateTimeField()),
            ],
        ),
    ]
