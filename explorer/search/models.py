"""Embeddings of explanations for semantic search.

One row per explanation, computed by a worker (workers/embeddings.py), never by the web
process: the web process only stores and compares vectors (pgvector), it never runs the model.
`text_md5` is the digest of the text the vector was computed from, so an edited explanation
is found stale by one comparison in SQL and embedded again.
"""

from __future__ import annotations

from django.db import models
from pgvector.django import HalfVectorField, HnswIndex

from explorer.explanations.models import Explanation
from explorer.saes.models import SAE

# The embedding model (workers/embeddings.py), stored with each vector and part of the cache key
# of query embeddings.
EMBEDDING_MODEL = "all-MiniLM-L6-v2"
# all-MiniLM-L6-v2 gives 384 numbers per text; another model needs a new column and index.
EMBEDDING_DIMENSIONS = 384


class ExplanationEmbedding(models.Model):
    explanation = models.OneToOneField(
        Explanation, on_delete=models.CASCADE, primary_key=True, related_name="embedding"
    )
    # Unit length (L2-normalised). Half precision (float16, 3 significant digits: cosine ranks
    # of sentence embeddings do not change): half the table and half the HNSW index of
    # float32, and a kNN query is bound by the index pages it reads (tests/bench/semantic.py).
    embedding = HalfVectorField(dimensions=EMBEDDING_DIMENSIONS)
    model = models.CharField(max_length=200)  # e.g. "all-MiniLM-L6-v2"
    text_md5 = models.CharField(max_length=32)  # md5(explanation.text) when embedded
    created = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [  # noqa: RUF012 (Django Meta convention)
            # Approximate nearest neighbours by cosine distance (`<=>` on halfvec); m and
            # ef_construction are pgvector's defaults, which keep recall@10 above 0.95 at these
            # sizes.
            HnswIndex(
                name="explanation_embedding_hnsw",
                fields=["embedding"],
                m=16,
                ef_construction=64,
                opclasses=["halfvec_cosine_ops"],
            ),
        ]

    def __str__(self) -> str:
        return f"embedding of explanation {self.explanation_id} ({self.model})"


class EmbeddingBacklog(models.Model):
    """An SAE whose explanations a worker was asked to embed and has not yet found all embedded.

    It is how the SAE page knows, in one index probe, that label embeddings are still being
    computed: counting the explanations that lack an up-to-date embedding joins and hashes every
    explanation of the SAE (most of a second at 250k features). Marked when embeddings are
    scheduled, after the commit that made the texts (database clock); removed by the sweep that
    finds nothing left, unless marked again after that sweep looked.
    """

    sae = models.OneToOneField(
        SAE, on_delete=models.CASCADE, primary_key=True, related_name="embedding_backlog"
    )
    since = models.DateTimeField()

    def __str__(self) -> str:
        return f"embeddings pending for SAE {self.sae_id} since {self.since:%Y-%m-%d %H:%M:%S}"
