"""Examples as arrays, and their compact on-disk layout, encoded for PostgreSQL's binary COPY
in bulk (numpy, no per-row Python). Importable without Django or torch.

Layout (DESIGN.md §4). An index run stores each context window once (`saes_indexwindow`:
run, number, token ids, document, offset); every example that uses the window points at it by
the window's row id. An example row holds only what is its own, in a partition of the
LIST-partitioned `saes_example` (one partition per SAE, see `PARENT_DDL`):

    sae_id int4 | feature_index int4 | window_id int4 | max_value float4 |
    bin int2 (-1 top, k quantile bin k) | max_position int2 | peak_token int4 | nz bytea

24 bytes of fixed columns after the 24-byte tuple header and a 1-byte varlena header: a row is
49 bytes plus its non-zero values, padded to 8, plus a 4-byte line pointer (the demo SAE: 73
bytes of heap and 14 of indexes per example, against ~1,000 bytes in the old layout).
Derivable columns are not stored: a quantile bin's bounds are the feature's
`quantile_bounds[k:k+2]`, the window's tokens, document and offset are in the window row.
`peak_token` (the token at `max_position`) is stored so "features by token" has an index.

`nz` packs the non-zero values of the example over its window of length L, in whichever of
two forms is smaller, told apart by the byte length alone (see `nz_unpack`):

* list: the positions (uint8 when L <= 256, else uint16 little-endian), then the values
  (float16 little-endian): (p + 2) * n bytes for n non-zero tokens;
* bitmap: ceil(L / 8) bytes, bit i (LSB first) set when token i is non-zero, then the values:
  ceil(L / 8) + 2 * n bytes.

The list form is used when p * n <= ceil(L / 8); its byte length is then at most
(p + 2) * ceil(L / 8) / p, and the bitmap form's always more.

Binary COPY row: int16 field count, then per field an int32 byte length (-1 for NULL) and
the value, big-endian; an int4[] is a header (ndims, has-null flag, element oid, length,
lower bound) and (int32 length 4, int32 value) per element.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
TRAILER = b"\xff\xff"
INT4_OID = 23
KINDS = ("top", "quantile")
TOP_BIN = -1  # saes_example.bin of a top example
MAX_WINDOW = 32767  # max_position is an int2

EXAMPLE_TABLE = "saes_example"
WINDOW_TABLE = "saes_indexwindow"
EXAMPLE_COLUMNS = (
    "sae_id",
    "feature_index",
    "window_id",
    "max_value",
    "bin",
    "max_position",
    "peak_token",
    "nz",
)
WINDOW_COLUMNS = ("run_id", "number", "token_ids", "document", "offset")


def column_list(columns: tuple[str, ...]) -> str:
    """Columns quoted for SQL ("offset" is a keyword)."""
    return ", ".join(f'"{c}"' for c in columns)


# The parent table (migration saes/0008). It has no index of its own: each partition gets
# PARTITION_INDEXES when it is loaded, so attaching one builds nothing.
PARENT_DDL = f"""
CREATE TABLE {EXAMPLE_TABLE} (
    sae_id integer NOT NULL,
    feature_index integer NOT NULL,
    window_id integer NOT NULL,
    max_value real NOT NULL,
    bin smallint NOT NULL,
    max_position smallint NOT NULL,
    peak_token integer NOT NULL,
    nz bytea NOT NULL
) PARTITION BY LIST (sae_id)
"""


def partition_name(sae_id: int, run_id: int) -> str:
    """The table holding SAE `sae_id`'s examples as loaded by run `run_id`."""
    return f"{EXAMPLE_TABLE}_{int(sae_id)}_r{int(run_id)}"


def partition_create_sql(sae_id: int, run_id: int) -> list[str]:
    """A standalone table shaped like a partition of SAE `sae_id` (to load, then attach).

    The CHECK constraint matches the partition bound, so ATTACH PARTITION skips its scan.
    Fill factor 100 (the default) suits it: a partition is written once and never updated.
    """
    name = partition_name(sae_id, run_id)
    return [
        f"DROP TABLE IF EXISTS {name}",
        f"CREATE TABLE {name} (LIKE {EXAMPLE_TABLE} INCLUDING DEFAULTS)",
        f"ALTER TABLE {name} ADD CONSTRAINT {name}_sae CHECK (sae_id = {int(sae_id)})",
    ]


def partition_index_sql(sae_id: int, run_id: int) -> list[str]:
    """The indexes of a partition, built after its load (one sort each).

    (feature_index): a feature's examples; btree deduplication stores each feature's key once,
    so it costs ~7 bytes per example. (peak_token, feature_index) over top examples:
    "features whose top examples peak on this token" (explorer/search/selectors.py).
    """
    name = partition_name(sae_id, run_id)
    return [
        f"CREATE INDEX {name}_feature ON {name} (feature_index)",
        f"CREATE INDEX {name}_peak ON {name} (peak_token, feature_index) WHERE bin = {TOP_BIN}",
        f"ANALYZE {name}",
    ]


@dataclass
class WindowArrays:
    """The context windows an index run's examples use, each stored once per run.

    Row ``i`` is window number ``number[i]`` of the run's corpus stream; its token ids are
    ``token_ids[i, :lengths[i]]`` (BOS first when the SAE was trained with it).
    """

    number: np.ndarray  # [w] int, unique
    token_ids: np.ndarray  # [w, width] int
    lengths: np.ndarray  # [w] int
    document: np.ndarray  # [w] int: document number in the run's corpus stream
    offset: np.ndarray  # [w] int: document token offset of the first token after BOS

    def __len__(self) -> int:
        return len(self.number)


@dataclass
class ExampleArrays:
    """n examples, sparse: example ``i`` has non-zero values at window positions
    ``nz_positions[nz_offsets[i]:nz_offsets[i + 1]]`` (ascending), with float16 values
    ``nz_values`` at the same slice; every other token of its window reads 0.

    ``window[i]`` is a window *number* (see :class:`WindowArrays`); ``max_value`` and
    ``max_position`` are the window's maximum for the feature and its first position.
    """

    feature_index: np.ndarray  # [n] int
    kind: np.ndarray  # [n] int: 0 top, 1 quantile
    quantile_index: np.ndarray  # [n] int (ignored for top)
    quantile_low: np.ndarray  # [n] float (ignored for top; not stored: Feature.quantile_bounds)
    quantile_high: np.ndarray  # [n] float (ditto)
    window: np.ndarray  # [n] int: window number
    max_value: np.ndarray  # [n] float
    max_position: np.ndarray  # [n] int
    nz_offsets: np.ndarray  # [n + 1] int64
    nz_positions: np.ndarray  # [nnz] int (< 65536)
    nz_values: np.ndarray  # [nnz] float16

    def __len__(self) -> int:
        return len(self.feature_index)


# -- the nz column ---------------------------------------------------------------------------


def _position_width(length: np.ndarray) -> np.ndarray:
    return np.where(length <= 256, 1, 2)


def nz_sizes(counts: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(byte length of each nz value, whether it uses the bitmap form) for examples with
    `counts` non-zero tokens over windows of `lengths` tokens."""
    counts, lengths = counts.astype(np.int64), lengths.astype(np.int64)
    p, l8 = _position_width(lengths), (lengths + 7) // 8
    bitmap = p * counts > l8
    return np.where(bitmap, l8 + 2 * counts, (p + 2) * counts), bitmap


def nz_scatter(
    buf: np.ndarray,
    starts: np.ndarray,
    counts: np.ndarray,
    lengths: np.ndarray,
    positions: np.ndarray,
    values: np.ndarray,
) -> None:
    """Write each example's nz bytes into `buf` (uint8, zeroed) at `starts[i]`.

    `positions`/`values` hold every example's non-zero tokens, example after example.
    """
    counts = counts.astype(np.int64)
    n = len(counts)
    if not len(positions):
        return
    _, bitmap = nz_sizes(counts, lengths)
    p, l8 = _position_width(lengths.astype(np.int64)), (lengths.astype(np.int64) + 7) // 8
    row = np.repeat(np.arange(n), counts)  # [nnz] example of each non-zero token
    first = np.cumsum(counts) - counts
    rank = np.arange(len(positions)) - first[row]  # [nnz] order within its example
    pos = positions.astype(np.int64)
    base = starts.astype(np.int64)[row]
    bm, pw = bitmap[row], p[row]
    # list form: positions first
    lst = ~bm
    one = lst & (pw == 1)
    buf[base[one] + rank[one]] = pos[one]
    two = lst & (pw == 2)
    buf[base[two] + 2 * rank[two]] = pos[two] & 0xFF
    buf[base[two] + 2 * rank[two] + 1] = pos[two] >> 8
    # bitmap form: one bit per non-zero token (positions are distinct within an example)
    np.bitwise_or.at(buf, base[bm] + (pos[bm] >> 3), (1 << (pos[bm] & 7)).astype(np.uint8))
    # the values, after the positions or the bitmap
    vstart = base + np.where(bm, l8[row], pw * counts[row])
    vb = np.ascontiguousarray(values, dtype="<f2").view(np.uint8).reshape(-1, 2)
    buf[vstart + 2 * rank] = vb[:, 0]
    buf[vstart + 2 * rank + 1] = vb[:, 1]


def nz_pack(positions: np.ndarray, values: np.ndarray, length: int) -> bytes:
    """One example's nz value (see the module docstring)."""
    counts = np.array([len(positions)])
    lengths = np.array([length])
    size, _ = nz_sizes(counts, lengths)
    buf = np.zeros(int(size[0]), np.uint8)
    nz_scatter(buf, np.zeros(1, np.int64), counts, lengths, np.asarray(positions), values)
    return buf.tobytes()


def nz_unpack(data: bytes | memoryview, length: int) -> np.ndarray:
    """The dense float32 values [length] of an nz value over a window of `length` tokens."""
    data = bytes(data)
    out = np.zeros(length, np.float32)
    size = len(data)
    if not size:
        return out
    p = 1 if length <= 256 else 2
    l8 = (length + 7) // 8
    if p * size <= (p + 2) * l8:  # list form
        n = size // (p + 2)
        pos = np.frombuffer(data, "u1" if p == 1 else "<u2", n)
        out[pos] = np.frombuffer(data, "<f2", n, p * n)
    else:
        bits = np.unpackbits(np.frombuffer(data, np.uint8, l8), bitorder="little")[:length]
        pos = np.flatnonzero(bits)
        out[pos] = np.frombuffer(data, "<f2", len(pos), l8)
    return out


def sparsify(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(positions, float16 values) of the non-zero entries of one dense row."""
    v = np.asarray(values, np.float16)
    pos = np.flatnonzero(v != 0)
    return pos, v[pos]


# -- binary COPY -----------------------------------------------------------------------------


def window_copy_chunks(w: WindowArrays, run_id: int) -> Iterator[bytes]:
    """The binary COPY stream of `WINDOW_COLUMNS` for the windows of run `run_id`."""
    yield SIGNATURE
    for length in np.unique(w.lengths):
        rows = np.flatnonzero(w.lengths == length)
        length = int(length)
        rec = np.zeros(
            len(rows),
            np.dtype(
                [
                    ("nfields", ">i2"),
                    ("run_len", ">i4"),
                    ("run", ">i8"),
                    ("num_len", ">i4"),
                    ("num", ">i4"),
                    ("tok_len", ">i4"),
                    ("tok_head", ">i4", (5,)),
                    ("tok", [("len", ">i4"), ("v", ">i4")], (length,)),
                    ("doc_len", ">i4"),
                    ("doc", ">i8"),
                    ("off_len", ">i4"),
                    ("off", ">i4"),
                ]
            ),
        )
        rec["nfields"] = len(WINDOW_COLUMNS)
        rec["run_len"], rec["run"] = 8, run_id
        rec["num_len"], rec["num"] = 4, w.number[rows]
        rec["tok_len"] = 20 + 8 * length
        rec["tok_head"] = (1, 0, INT4_OID, length, 1)
        rec["tok"]["len"] = 4
        rec["tok"]["v"] = w.token_ids[rows, :length]
        rec["doc_len"], rec["doc"] = 8, w.document[rows]
        rec["off_len"], rec["off"] = 4, w.offset[rows]
        yield rec.tobytes()
    yield TRAILER


_EXAMPLE_HEAD = np.dtype(
    [
        ("nfields", ">i2"),
        ("sae_len", ">i4"),
        ("sae", ">i4"),
        ("fi_len", ">i4"),
        ("fi", ">i4"),
        ("win_len", ">i4"),
        ("win", ">i4"),
        ("max_len", ">i4"),
        ("max", ">f4"),
        ("bin_len", ">i4"),
        ("bin", ">i2"),
        ("pos_len", ">i4"),
        ("pos", ">i2"),
        ("peak_len", ">i4"),
        ("peak", ">i4"),
        ("nz_len", ">i4"),
    ]
)


@dataclass
class WindowIndex:
    """Window numbers -> their row id, length and token ids (to encode examples)."""

    number: np.ndarray  # [w] sorted
    id: np.ndarray  # [w]
    lengths: np.ndarray  # [w]
    token_ids: np.ndarray  # [w, width]

    @classmethod
    def of(cls, w: WindowArrays, ids_by_number: dict[int, int]) -> WindowIndex:
        order = np.argsort(w.number, kind="stable")
        number = np.asarray(w.number)[order]
        return cls(
            number=number,
            id=np.array([ids_by_number[int(k)] for k in number], np.int64),
            lengths=np.asarray(w.lengths)[order],
            token_ids=np.asarray(w.token_ids)[order],
        )

    def rows(self, numbers: np.ndarray) -> np.ndarray:
        """Row of each window number; raises ValueError for a number that is not a window."""
        at = np.searchsorted(self.number, numbers)
        bad = (at >= len(self.number)) | (
            self.number[np.minimum(at, len(self.number) - 1)] != numbers
        )
        if len(numbers) and bad.any():
            raise ValueError(
                f"example window {int(numbers[bad][0])} is not among the run's windows"
            )
        return at


def example_copy_rows(a: ExampleArrays, sae_id: int, windows: WindowIndex) -> bytes:
    """The binary COPY rows (no signature or trailer) of `EXAMPLE_COLUMNS` for chunk `a`.

    Raises ValueError for an example whose window is unknown or whose maximum lies outside it.
    """
    n = len(a)
    if n == 0:
        return b""
    w = windows.rows(np.asarray(a.window))
    lengths = windows.lengths[w].astype(np.int64)
    pos = np.asarray(a.max_position, np.int64)
    if (pos < 0).any() or (pos >= lengths).any() or (lengths > MAX_WINDOW).any():
        raise ValueError("an example's max_position lies outside its window")
    offsets = np.asarray(a.nz_offsets, np.int64)
    counts = np.diff(offsets)
    size, _ = nz_sizes(counts, lengths)
    head = np.zeros(n, _EXAMPLE_HEAD)
    head["nfields"] = len(EXAMPLE_COLUMNS)
    head["sae_len"], head["sae"] = 4, sae_id
    head["fi_len"], head["fi"] = 4, a.feature_index
    head["win_len"], head["win"] = 4, windows.id[w]
    head["max_len"], head["max"] = 4, a.max_value
    head["bin_len"], head["bin"] = 2, np.where(np.asarray(a.kind) != 0, a.quantile_index, TOP_BIN)
    head["pos_len"], head["pos"] = 2, pos
    head["peak_len"], head["peak"] = 4, windows.token_ids[w, pos]
    head["nz_len"] = size
    h = _EXAMPLE_HEAD.itemsize
    ends = np.cumsum(h + size)
    starts = ends - (h + size)  # [n] first byte of each row
    buf = np.zeros(int(ends[-1]), np.uint8)
    buf[(starts[:, None] + np.arange(h)).ravel()] = head.view(np.uint8)
    lo, hi = int(offsets[0]), int(offsets[-1])
    nz_scatter(
        buf,
        starts + h,
        counts,
        lengths,
        np.asarray(a.nz_positions)[lo:hi],
        np.asarray(a.nz_values)[lo:hi],
    )
    return buf.tobytes()
