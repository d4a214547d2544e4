"""Shard files (the training tier) as numpy: ShardReader (one file), Dataset (a set), ShardWriter."""
from __future__ import annotations

import glob
import os
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Union

import numpy as np

from . import _strata

PathLike = Union[str, os.PathLike]


def shard_paths(source: Union[PathLike, Sequence[PathLike]]) -> List[str]:
    """The shard files `source` names: a directory (every *.shard below it, sorted by path, as
    a transform or `strata tier stage` lays them out), a glob pattern, one file, or a list."""
    if isinstance(source, (str, os.PathLike)):
        s = os.fspath(source)
        if os.path.isdir(s):
            found = sorted(glob.glob(os.path.join(s, "**", "*.shard"), recursive=True))
            if not found:
                raise _strata.NotFoundError(f"no *.shard files below {s}")
            return found
        if any(c in s for c in "*?["):
            found = sorted(glob.glob(s, recursive=True))
            if not found:
                raise _strata.NotFoundError(f"no shard files match {s}")
            return found
        return [s]
    return [os.fspath(p) for p in source]


class Dataset:
    """Records of a set of shards, numbered 0..N-1 in the order of the files (as the loader
    numbers them). Reads run without the GIL; tensors come back as numpy arrays that own the
    decoded bytes (no copy into Python).

    on_corrupt="raise" (default) raises CorruptionError naming the shard and record;
    "skip" leaves damaged records out of batches and counts them in `skipped`.
    Picklable (it reopens its files in the process that unpickles it), so it can be handed to
    DataLoader workers under fork or spawn.
    """

    def __init__(self, source: Union[PathLike, Sequence[PathLike]], *, key: Optional[bytes] = None,
                 direct_io: bool = True, on_corrupt: str = "raise"):
        if on_corrupt not in ("raise", "skip"):
            raise ValueError("on_corrupt must be 'raise' or 'skip'")
        self.paths = shard_paths(source)
        self.key = key
        self.direct_io = direct_io
        self.on_corrupt = on_corrupt
        self.skipped = 0
        self.skipped_records: List[int] = []
        self._set = None
        self._open()

    def _open(self):
        self._set = _strata._ShardSet(self.paths, self.key, self.direct_io)

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_set"] = None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._open()

    def __len__(self) -> int:
        return len(self._set)

    @property
    def schema(self) -> List[Dict[str, Any]]:
        """The fields: dicts with name, type and dtype/shape (tensors) or num_classes (labels)."""
        return self._set.schema

    @property
    def shards(self) -> List[Dict[str, Any]]:
        return self._set.shards

    def __getitem__(self, index):
        if isinstance(index, (int, np.integer)):
            return self._set.read(int(index))
        return self.read_batch(index)

    def read(self, index: int) -> Dict[str, Any]:
        """One record: tensors as arrays, labels and ints as int, floats as float, bytes, str."""
        return self._set.read(int(index))

    def read_batch(self, indexes) -> Dict[str, Any]:
        """Records `indexes` in that order, each field stacked: tensors of one shape, labels,
        ints (int64) and floats (float64) into one array each, in one 4 KiB-aligned buffer;
        bytes, strings and tensors of differing shapes as lists."""
        idx = np.ascontiguousarray(np.asarray(indexes, dtype=np.int64).reshape(-1))
        batch, bad = self._set.read_batch(idx, self.on_corrupt == "skip")
        if bad:
            self.skipped += len(bad)
            self.skipped_records.extend(bad)
        return batch

    def verify(self) -> None:
        """Reads every byte of every shard; raises CorruptionError at the first damage."""
        self._set.verify()

    def __repr__(self) -> str:
        return f"<strata.Dataset {len(self.paths)} shards, {len(self)} records>"


class ShardReader(Dataset):
    """One shard file."""

    def __init__(self, path: PathLike, *, key: Optional[bytes] = None, direct_io: bool = True,
                 on_corrupt: str = "raise"):
        super().__init__([os.fspath(path)], key=key, direct_io=direct_io, on_corrupt=on_corrupt)

    @property
    def path(self) -> str:
        return self.paths[0]

    @property
    def info(self) -> Dict[str, Any]:
        """number, first_record, records, encrypted, direct_io."""
        return self._set.shards[0]

    def __repr__(self) -> str:
        return f"<strata.ShardReader {self.path}, {len(self)} records>"


class ShardWriter:
    """Writes records into shards `<prefix>-00000.shard`, ... in `dir`, starting a new file
    before one would pass `target_size`. Each file appears only once complete and durable.

        w = strata.ShardWriter(dir, [{"name": "image", "type": "tensor", "dtype": "uint8", "shape": [28, 28]},
                                     {"name": "label", "type": "label", "num_classes": 10}])
        w.add({"image": pixels, "label": 3})
        shards = w.finish()        # [{"path", "number", "first_record", "records", "bytes"}]
    """

    def __init__(self, dir: PathLike, schema: Sequence[Mapping[str, Any]], *, prefix: str = "shard",
                 target_size: int = 256 << 20, key: Optional[bytes] = None):
        self.schema = [dict(f) for f in schema]
        self._dtypes = {f["name"]: np.dtype("uint16" if f.get("dtype") == "bfloat16" else f["dtype"])
                        for f in self.schema if f.get("type", "tensor") == "tensor"}
        self._w = _strata._ShardWriter(os.fspath(dir), self.schema, prefix, target_size, key)
        self.shards: Optional[List[Dict[str, Any]]] = None

    def add(self, record: Union[Mapping[str, Any], Sequence[Any]]) -> None:
        """One record: a dict by field name (or a sequence in schema order). Tensors are
        converted to the field's dtype; a record that does not match the schema raises
        InvalidArgumentError and writes nothing."""
        if isinstance(record, Mapping):
            rec = dict(record)
            for name, dt in self._dtypes.items():
                if name in rec:
                    rec[name] = np.ascontiguousarray(rec[name], dtype=dt)
        else:
            rec = list(record)
            for i, f in enumerate(self.schema):
                if f["name"] in self._dtypes and i < len(rec):
                    rec[i] = np.ascontiguousarray(rec[i], dtype=self._dtypes[f["name"]])
        self._w.add(rec)

    def add_many(self, records: Iterable[Any]) -> None:
        for r in records:
            self.add(r)

    def finish(self) -> List[Dict[str, Any]]:
        """Finishes the last shard; returns every shard written with its record range."""
        if self.shards is None:
            self.shards = self._w.finish()
        return self.shards

    def __enter__(self) -> "ShardWriter":
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:
            self.finish()
