"""Examples as arrays, encoded for PostgreSQL's binary COPY in bulk (numpy, no per-row Python).

An index run stores tens of thousands to millions of examples. Formatting them row by row
(text COPY, or psycopg's `write_row`) cost more than the database's own work (measured: 2 s of
Python for 80k rows of 128 tokens, out of 5.8 s). Here every row of a group with the same
shape (window length and kind) is one record of a numpy structured dtype laid out exactly as
the binary COPY row format, so a whole group is encoded by a few array assignments.

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
N_FIELDS = 11  # saes_example columns written (see indexing._EXAMPLE_COLUMNS)
KINDS = ("top", "quantile")


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
    quantile_low: np.ndarray  # [n] float (ignored for top)
    quantile_high: np.ndarray  # [n] float
    window: np.ndarray  # [n] int: window number
    max_value: np.ndarray  # [n] float
    max_position: np.ndarray  # [n] int
    nz_offsets: np.ndarray  # [n + 1] int64
    nz_positions: np.ndarray  # [nnz] int (< 65536)
    nz_values: np.ndarray  # [nnz] float16

    def __len__(self) -> int:
        return len(self.feature_index)


def _row_dtype(length: int, quantile: bool) -> np.dtype:
    kind = KINDS[int(quantile)].encode()
    fields = [
        ("nfields", ">i2"),
        ("id_len", ">i4"),
        ("id", ">i8"),
        ("kind_len", ">i4"),
        ("kind", f"S{len(kind)}"),
    ]
    if quantile:
        fields += [
            ("qi_len", ">i4"),
            ("qi", ">i2"),
            ("lo_len", ">i4"),
            ("lo", ">f8"),
            ("hi_len", ">i4"),
            ("hi", ">f8"),
        ]
    else:
        fields += [("qi_len", ">i4"), ("lo_len", ">i4"), ("hi_len", ">i4")]  # NULLs
    fields += [
        ("tok_len", ">i4"),
        ("tok_head", ">i4", (5,)),
        ("tok", [("len", ">i4"), ("v", ">i4")], (length,)),
        ("val_len", ">i4"),
        ("val", "<f2", (length,)),
        ("max_len", ">i4"),
        ("max", ">f8"),
        ("pos_len", ">i4"),
        ("pos", ">i4"),
        ("doc_len", ">i4"),
        ("doc", ">i8"),
        ("off_len", ">i4"),
        ("off", ">i4"),
    ]
    return np.dtype(fields)


def _encode_group(
    a: ExampleArrays, rows: np.ndarray, feature_ids: np.ndarray, length: int, quantile: bool
) -> bytes:
    rec = np.zeros(len(rows), _row_dtype(length, quantile))
    rec["nfields"] = N_FIELDS
    rec["id_len"], rec["id"] = 8, feature_ids[a.feature_index[rows]]
    rec["kind_len"], rec["kind"] = len(KINDS[int(quantile)]), KINDS[int(quantile)].encode()
    if quantile:
        rec["qi_len"], rec["qi"] = 2, a.quantile_index[rows]
        rec["lo_len"], rec["lo"] = 8, a.quantile_low[rows]
        rec["hi_len"], rec["hi"] = 8, a.quantile_high[rows]
    else:
        rec["qi_len"] = rec["lo_len"] = rec["hi_len"] = -1
    rec["tok_len"] = 20 + 8 * length
    rec["tok_head"] = (1, 0, INT4_OID, length, 1)
    rec["tok"]["len"] = 4
    rec["tok"]["v"] = a.token_ids[rows, :length]
    rec["val_len"], rec["val"] = 2 * length, a.values[rows, :length]
    rec["max_len"], rec["max"] = 8, a.max_value[rows]
    rec["pos_len"], rec["pos"] = 4, a.max_position[rows]
    rec["doc_len"], rec["doc"] = 8, a.document[rows]
    rec["off_len"], rec["off"] = 4, a.offset[rows]
    return rec.tobytes()


def binary_copy_chunks(
    a: ExampleArrays, feature_ids: np.ndarray, *, rows_per_chunk: int = 16384
) -> Iterator[bytes]:
    """The whole binary COPY stream (signature, rows, trailer) in chunks.

    `feature_ids[i]` is the database id of feature index i.
    """
    yield SIGNATURE
    key = a.lengths.astype(np.int64) * 2 + (a.kind != 0)
    for k in np.unique(key):
        group = np.flatnonzero(key == k)
        length, quantile = int(k // 2), bool(k % 2)
        for start in range(0, len(group), rows_per_chunk):
            yield _encode_group(
                a, group[start : start + rows_per_chunk], feature_ids, length, quantile
            )
    yield TRAILER
