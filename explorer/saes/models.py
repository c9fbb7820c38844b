"""Language models, SAEs, their features and examples, and index runs (DESIGN.md §4).

Sized for millions of features: per-token data lives in arrays on one row per example, never
one row per token. Token strings are stored once per LanguageModel (`vocab`); examples and
features store token ids only.

This module must stay importable without torch (the web process never imports it).
"""

from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.db import models


class LanguageModel(models.Model):
    """A causal LM that SAEs attach to. One row per `source`; its vocab is stored once here."""

    slug = models.SlugField(max_length=100, unique=True)
    # "demo", a local directory (stored absolute) or a Hugging Face hub id.
    source = models.CharField(max_length=500, unique=True)
    architecture = models.CharField(max_length=100)  # HF model_type, e.g. "gpt2"
    d_model = models.PositiveIntegerField()
    n_layers = models.PositiveIntegerField()
    n_ctx = models.PositiveIntegerField()
    # vocab[i] is token id i decoded on its own. PostgreSQL text cannot hold NUL, so a NUL
    # character is stored as U+2400 (␀); see services.vocab_for_storage.
    vocab = ArrayField(models.TextField(), default=list)
    revision = models.CharField(max_length=100, blank=True)  # hub commit hash; "" for local
    # The tokenizer's chat template (Jinja), read at registration; "" when it has none. Chat
    # steering is offered only for a model that has one.
    chat_template = models.TextField(blank=True, default="", db_default="")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("slug",)

    @property
    def has_chat_template(self) -> bool:
        return bool(self.chat_template)

    def __str__(self) -> str:
        return self.slug


class SAE(models.Model):
    """A sparse autoencoder on one hook of a LanguageModel."""

    model = models.ForeignKey(LanguageModel, on_delete=models.PROTECT, related_name="saes")
    slug = models.SlugField(max_length=100)
    # "demo", a local SAELens folder (stored absolute) or "release:sae_id".
    source = models.CharField(max_length=500)
    hook_name = models.CharField(max_length=200)  # canonical, e.g. "blocks.8.hook_resid_pre"
    layer = models.PositiveIntegerField()
    d_in = models.PositiveIntegerField()
    d_sae = models.PositiveIntegerField()
    architecture = models.CharField(max_length=50)  # standard / topk / jumprelu / gated / ...
    # {"prepend_bos": bool, "centre": bool, "normalisation": str}: how activations are prepared.
    preprocessing = models.JSONField(default=dict)
    # Where the SAE came from and how it was trained: the SAELens metadata (dataset, context
    # size, training tokens, versions), plus the spec it was registered from.
    provenance = models.JSONField(default=dict)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("model__slug", "layer", "slug")
        verbose_name = "SAE"
        constraints = [  # noqa: RUF012 (Django Meta convention)
            models.UniqueConstraint(fields=["model", "slug"], name="sae_slug_unique_per_model"),
            models.UniqueConstraint(fields=["model", "source"], name="sae_source_unique_per_model"),
        ]

    def __str__(self) -> str:
        return f"{self.model.slug}/{self.slug}"


class Feature(models.Model):
    """Statistics and weight-only facts of one SAE latent, written by indexing."""

    sae = models.ForeignKey(SAE, on_delete=models.CASCADE, related_name="features")
    index = models.PositiveIntegerField()
    density = models.FloatField(default=0.0)  # fraction of counted tokens where it fires
    max_activation = models.FloatField(default=0.0)
    mean_activation = models.FloatField(default=0.0)  # over the tokens where it fires
    # Histogram of non-zero activations: len(hist_edges) == len(hist_counts) + 1.
    hist_edges = ArrayField(models.FloatField(), default=list)
    hist_counts = ArrayField(models.BigIntegerField(), default=list)
    # Quantile bins of the examples: bounds [0, b_1, ..., max] and the exact share of the
    # non-zero activations in each bin ("Interval a-b, contains x%"); empty for dead features.
    quantile_bounds = ArrayField(models.FloatField(), default=list)
    quantile_fractions = ArrayField(models.FloatField(), default=list)
    top_logit_ids = ArrayField(models.IntegerField(), default=list)
    top_logit_values = ArrayField(models.FloatField(), default=list)
    bottom_logit_ids = ArrayField(models.IntegerField(), default=list)
    bottom_logit_values = ArrayField(models.FloatField(), default=list)
    neighbour_indices = ArrayField(models.IntegerField(), default=list)  # by decoder cosine
    neighbour_cosines = ArrayField(models.FloatField(), default=list)
    dead = models.BooleanField(default=False)

    class Meta:
        ordering = ("sae", "index")
        constraints = [  # noqa: RUF012
            models.UniqueConstraint(fields=["sae", "index"], name="feature_index_unique_per_sae"),
        ]
        indexes = [  # noqa: RUF012 (feature tables sort by these within one SAE; the index
            # breaks ties, so keyset pages (value, index) walk the index without a sort)
            models.Index(fields=["sae", "density", "index"], name="feature_sae_density_idx"),
            models.Index(fields=["sae", "max_activation", "index"], name="feature_sae_max_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.sae} #{self.index}"


class RealField(models.FloatField):
    """A float4 (`real`) column: 7 significant digits, half the bytes of a FloatField."""

    def db_type(self, connection) -> str:
        return "real"


class SAEMap(models.Model):
    """The feature map of an SAE: a 2-D layout of its decoder directions, one row per SAE.

    `xs[i]`, `ys[i]` are feature i's point in [0, 1] (SQL: `xs[index + 1]`). Weight-only, so
    a re-index keeps it; it lives outside the feature rows so that laying it out writes one
    row instead of rewriting every feature row. No row: not laid out yet.
    """

    sae = models.OneToOneField(SAE, on_delete=models.CASCADE, primary_key=True, related_name="map")
    xs = ArrayField(RealField())
    ys = ArrayField(RealField())
    computed = models.DateTimeField()
    seconds = models.FloatField(null=True, blank=True)  # how long the layout took

    class Meta:
        verbose_name = "SAE map"

    def __str__(self) -> str:
        return f"map of {self.sae_id}"


# Feature's weight-only facts: logit effects and decoder neighbours, one array column each.
# Pages that do not show them defer them; exports write them out as JSON arrays.
WEIGHT_FACT_FIELDS = (
    "top_logit_ids",
    "top_logit_values",
    "bottom_logit_ids",
    "bottom_logit_values",
    "neighbour_indices",
    "neighbour_cosines",
)


class Example(models.Model):
    """One context window of a feature: a top example or a sample from a quantile bin.

    Stored compactly (explorer/saes/example_copy.py has the layout): the table is partitioned
    by SAE (LIST on `sae_id`, one partition per SAE, swapped whole by a re-index), a row
    points at its window (`IndexWindow`: token ids, document, offset stored once per run) and
    holds its non-zero values sparsely as float16 in `nz`. `bin` is -1 for a top example and k
    for quantile bin k, whose bounds are the feature's `quantile_bounds[k:k + 2]`.

    Not managed by Django (migration 0008 makes the table; indexing makes the partitions) and
    with no primary key of its own: read it through `explorer.saes.selectors.stored_examples`,
    which decodes rows into tokens and dense values.
    """

    class Kind(models.TextChoices):
        TOP = "top", "top"
        QUANTILE = "quantile", "quantile"

    pk = models.CompositePrimaryKey("sae_id", "feature_index", "bin", "window_id")
    sae = models.ForeignKey(SAE, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+")
    feature_index = models.IntegerField()
    window_id = models.IntegerField()
    max_value = models.FloatField()  # real: activations are float32
    bin = models.SmallIntegerField()
    max_position = models.SmallIntegerField()  # index into the window's token_ids
    peak_token = models.IntegerField()  # the window's token at max_position
    nz = models.BinaryField()

    class Meta:
        managed = False
        db_table = "saes_example"

    def __str__(self) -> str:
        return f"{self.sae_id} #{self.feature_index} bin {self.bin} {self.max_value:.3g}"


class IndexWindow(models.Model):
    """One context window of an index run's corpus stream, stored once and shared by every
    example of the run that shows it. A re-index deletes the windows of the SAE's older runs
    when it swaps its examples in."""

    # int4: examples point at it with a 4-byte window_id.
    id = models.AutoField(primary_key=True)
    run = models.ForeignKey("IndexRun", on_delete=models.CASCADE, related_name="windows")
    number = models.IntegerField()  # window number in the run's corpus stream
    token_ids = ArrayField(models.IntegerField())  # BOS first when the SAE was trained with it
    document = models.BigIntegerField()  # document number in the IndexRun's corpus stream
    # Token offset in that document of the window's first token after BOS.
    offset = models.PositiveIntegerField()

    class Meta:
        constraints = [  # noqa: RUF012
            models.UniqueConstraint(fields=["run", "number"], name="indexwindow_unique_per_run"),
        ]

    def __str__(self) -> str:
        return f"{self.run} window {self.number}"


class JobStatus(models.TextChoices):
    """States of a claimed unit of work (an index shard, a feature's importance): queued,
    claimed by one worker (running), then done or failed."""

    QUEUED = "queued", "queued"
    RUNNING = "running", "running"
    DONE = "done", "done"
    FAILED = "failed", "failed"


class IndexRun(models.Model):
    """One run of `index_sae` over a corpus: what was asked, how far it got, how it ended."""

    class Status(models.TextChoices):
        QUEUED = "queued", "queued"
        RUNNING = "running", "running"
        DONE = "done", "done"
        FAILED = "failed", "failed"
        CANCELLED = "cancelled", "cancelled"

    sae = models.ForeignKey(SAE, on_delete=models.CASCADE, related_name="index_runs")
    corpus = models.CharField(max_length=1000)  # the corpus spec as given: demo, file/glob, hf:...
    tokens = models.BigIntegerField()  # tokens asked for
    shards = models.PositiveIntegerField(default=1)
    # context, top, quantiles, per-quantile, BOS exclusion...: the choices recorded as made.
    options = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    tokens_done = models.BigIntegerField(default=0)
    tokens_total = models.BigIntegerField(default=0)
    timings = models.JSONField(default=dict, blank=True)  # phase name -> seconds
    error = models.TextField(blank=True)
    created = models.DateTimeField(auto_now_add=True)
    started = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created",)
        indexes = [models.Index(fields=["sae", "-created"], name="indexrun_sae_created")]  # noqa: RUF012

    def __str__(self) -> str:
        return f"{self.sae} run {self.pk} ({self.status})"


class IndexShard(models.Model):
    """One corpus shard of an IndexRun: claimed by one worker, its partial result kept.

    `result` holds the shard's mergeable statistics and candidate values (engine bytes, see
    workers/engine/candidates.py) until the run's merge step has loaded the features; a resumed
    run skips shards that are done.
    """

    Status = JobStatus

    run = models.ForeignKey(IndexRun, on_delete=models.CASCADE, related_name="shard_rows")
    index = models.PositiveIntegerField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    tokens_done = models.BigIntegerField(default=0)
    tokens_total = models.BigIntegerField(default=0)
    attempts = models.PositiveIntegerField(default=0)
    worker = models.CharField(max_length=200, blank=True)  # hostname:pid that ran it
    result = models.BinaryField(null=True, blank=True)
    seconds = models.FloatField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ("run", "index")
        constraints = [  # noqa: RUF012
            models.UniqueConstraint(fields=["run", "index"], name="indexshard_unique_per_run"),
        ]

    def __str__(self) -> str:
        return f"{self.run} shard {self.index} ({self.status})"


class SAEEvaluation(models.Model):
    """Quality metrics of an SAE on held-out tokens (workers/engine/evals.py), one row per run.

    `metrics` holds the engine's figures (l0, explained_variance, mse, ce_loss_clean,
    ce_loss_spliced, ce_loss_zero, loss_recovered, kl_div, dead_fraction, dense_fraction,
    tokens); a figure that is undefined (loss recovered when ablation costs nothing) is null.
    """

    Status = JobStatus

    sae = models.ForeignKey(SAE, on_delete=models.CASCADE, related_name="evaluations")
    corpus = models.CharField(max_length=1000)  # corpus spec, e.g. "demo:val"
    skip_tokens = models.BigIntegerField(default=0)  # leading corpus tokens left to the index
    tokens = models.BigIntegerField()  # tokens asked for
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    tokens_done = models.BigIntegerField(default=0)
    tokens_total = models.BigIntegerField(default=0)
    metrics = models.JSONField(default=dict, blank=True)
    seconds = models.FloatField(null=True, blank=True)
    error = models.TextField(blank=True)
    created = models.DateTimeField(auto_now_add=True)
    finished = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created",)
        indexes = [models.Index(fields=["sae", "-created"], name="saeeval_sae_created")]  # noqa: RUF012

    def __str__(self) -> str:
        return f"{self.sae} evaluation {self.pk} ({self.status})"
