"""Checkpoints and runs (strata::Checkpointer, CheckpointReader, Runs) and served weights.

    import strata
    repo = strata.Repository.open("/srv/lake")
    with strata.Checkpointer(repo, "exp1") as ckpt:                     # run exp1 (created if new)
        ckpt.save(100, {"w": w, "b": b}, states={"optimizer": blob}, metrics={"loss": 0.3})
        ...                                                            # training goes on
    ck = strata.load_checkpoint(repo, "exp1", latest_valid=True)         # the newest good one
    ck.tensors["w"], ck.states["optimizer"], ck.step

Saves are asynchronous: save() returns once the arrays are copied into the staging buffer (the
arrays may then change), the bytes are stored in the background, and a failed save is raised
by the next save(), wait() or close(). A checkpoint is listed and loadable only once it is
durable. bfloat16 and float8 have no numpy dtype: save their bits as uint16/int16 (uint8)
arrays and name the dtype in `dtypes` ("BF16", "F8_E4M3", ...); they load as uint16 (uint8).
"""
from __future__ import annotations

import os
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from . import _strata

__all__ = ["Checkpointer", "CheckpointReader", "Checkpoint", "Runs", "Weights", "load_checkpoint",
           "load_weights", "numpy_dtype", "checkpoint_dtype"]

_TO_NAME = {
    np.dtype(np.float64): "F64", np.dtype(np.float32): "F32", np.dtype(np.float16): "F16",
    np.dtype(np.int64): "I64", np.dtype(np.int32): "I32", np.dtype(np.int16): "I16", np.dtype(np.int8): "I8",
    np.dtype(np.uint64): "U64", np.dtype(np.uint32): "U32", np.dtype(np.uint16): "U16", np.dtype(np.uint8): "U8",
    np.dtype(np.bool_): "BOOL",
}
_FROM_NAME = {v: k for k, v in _TO_NAME.items()}
_FROM_NAME.update({"BF16": np.dtype(np.uint16), "F8_E4M3": np.dtype(np.uint8), "F8_E5M2": np.dtype(np.uint8)})


def checkpoint_dtype(dtype: Any) -> str:
    """The checkpoint's name for a numpy dtype ("F32", ...)."""
    dtype = np.dtype(dtype)
    try:
        return _TO_NAME[dtype.newbyteorder("=") if dtype.byteorder not in "=|" else dtype]
    except KeyError:
        raise TypeError(f"numpy dtype {dtype} has no checkpoint dtype") from None


def numpy_dtype(name: str) -> np.dtype:
    """The numpy dtype a checkpoint dtype loads as (BF16 as uint16, F8_* as uint8)."""
    try:
        return _FROM_NAME[name]
    except KeyError:
        raise TypeError(f"unknown checkpoint dtype {name!r}") from None


def _native_repo(repo: Any) -> Any:
    return getattr(repo, "_r", repo)


def _array(a: Any) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype.byteorder == ">":
        a = a.astype(a.dtype.newbyteorder("="))
    # (not ascontiguousarray: it makes scalars 1-d)
    return a if a.flags.c_contiguous else np.ascontiguousarray(a).reshape(a.shape)


class Checkpointer:
    """Saves checkpoints of one run, asynchronously. Not thread-safe (one training loop).

    staging_bytes: the copy buffer (a save blocks while it is full; at least the model's size
    makes the caller's stall a memcpy). max_in_flight: checkpoints persisting at once.
    on_complete(error_or_None, info_dict) is called from a background thread when a save is
    durable or failed."""

    def __init__(self, repo: Any, run: str, *, staging_bytes: int = 0, chunk_bytes: int = 0,
                 max_in_flight: int = 0, threads: int = 0,
                 on_complete: Optional[Callable[[Optional[str], Dict[str, Any]], None]] = None):
        self.run = run
        self._c = _strata._Checkpointer(_native_repo(repo), run, staging_bytes, chunk_bytes, max_in_flight,
                                        threads, on_complete)

    def save(self, step: int, tensors: Mapping[str, Any], *, states: Optional[Mapping[str, bytes]] = None,
             meta: Optional[Mapping[str, Any]] = None, metrics: Optional[Mapping[str, float]] = None,
             dtypes: Optional[Mapping[str, str]] = None, global_shapes: Optional[Mapping[str, Sequence[int]]] = None,
             offsets: Optional[Mapping[str, Sequence[int]]] = None, rank: int = 0, world_size: int = 1) -> None:
        """Copies `tensors` (name -> array) and `states` (name -> bytes) into the staging buffer
        and returns; the checkpoint becomes visible once stored. Raises the error of an earlier
        save that failed (then this one is not started)."""
        dtypes = dtypes or {}
        global_shapes = global_shapes or {}
        offsets = offsets or {}
        items = []
        for name, value in tensors.items():
            a = _array(value)
            dtype = dtypes.get(name) or checkpoint_dtype(a.dtype)
            gs = global_shapes.get(name)
            off = offsets.get(name)
            items.append((name, dtype, a, list(gs) if gs is not None else None, list(off) if off is not None else None))
        blobs = [(name, bytes(b) if not isinstance(b, bytes) else b) for name, b in (states or {}).items()]
        self._c.save(int(step), items, blobs, {str(k): str(v) for k, v in (meta or {}).items()},
                     {str(k): float(v) for k, v in (metrics or {}).items()}, rank, world_size)

    def wait(self) -> None:
        """Waits until every save so far is durable and visible; raises the first error not yet raised."""
        self._c.wait()

    def close(self) -> None:
        """Waits for the saves in flight (raising an error not yet raised) and releases the run."""
        self._c.close()

    def __enter__(self) -> "Checkpointer":
        return self

    def __exit__(self, exc_type, *rest) -> None:
        if exc_type is None:
            self.close()
        else:
            try:
                self.close()
            except _strata.Error:
                pass


class Checkpoint:
    """A loaded checkpoint: step, tensors (name -> array), states (name -> bytes), info."""

    def __init__(self, info: Dict[str, Any], tensors: Dict[str, np.ndarray], states: Dict[str, bytes]):
        self.info = info
        self.step: int = info["step"]
        self.tensors = tensors
        self.states = states
        self.meta: Dict[str, str] = info["meta"]
        self.metrics: Dict[str, float] = info["metrics"]
        self.dtypes: Dict[str, str] = {t["name"]: t["dtype"] for t in info["tensors"]}

    def __repr__(self) -> str:
        return f"Checkpoint(run={self.info['run']!r}, step={self.step}, tensors={len(self.tensors)})"


class CheckpointReader:
    """One checkpoint of a run (the newest when step is None). Every byte read is authenticated;
    damage raises CorruptionError naming the tensor. latest_valid: when the chosen checkpoint
    fails verification, the newest older one that passes is opened instead."""

    def __init__(self, repo: Any, run: str, step: Optional[int] = None, *, latest_valid: bool = False,
                 threads: int = 0):
        self._r = _strata._CheckpointReader(_native_repo(repo), run, -1 if step is None else int(step),
                                            latest_valid, threads)
        self.info: Dict[str, Any] = self._r.info()
        self.step: int = self.info["step"]
        self._tensors = {t["name"]: t for t in self.info["tensors"]}

    @property
    def names(self) -> List[str]:
        return list(self._tensors)

    @property
    def states(self) -> List[str]:
        return list(self.info["states"])

    def dtype(self, name: str) -> str:
        return self._meta(name)["dtype"]

    def _meta(self, name: str) -> Dict[str, Any]:
        try:
            return self._tensors[name]
        except KeyError:
            raise _strata.NotFoundError(f"checkpoint {self.step} has no tensor '{name}'") from None

    def tensor(self, name: str, rows: Optional[Tuple[int, int]] = None, out: Optional[np.ndarray] = None) -> np.ndarray:
        """The tensor as a new array (or into `out`); rows=(begin, end): only those rows of dim 0."""
        t = self._meta(name)
        shape = list(t["shape"])
        if rows is not None:
            begin, end = int(rows[0]), int(rows[1])
            if not shape:
                raise ValueError(f"tensor '{name}' is a scalar: it has no rows")
            shape[0] = max(0, end - begin)
        if out is None:
            out = np.empty(shape, dtype=numpy_dtype(t["dtype"]))
        elif not out.flags.c_contiguous or not out.flags.writeable:
            raise ValueError("out must be a writeable C-contiguous array")
        if rows is None:
            self._r.read(name, out)
        else:
            self._r.read_rows(name, begin, end, out)
        return out

    def tensors(self, names: Optional[Iterable[str]] = None) -> Dict[str, np.ndarray]:
        """Whole tensors (all, or `names`) as new arrays, read in parallel: reading every tensor
        this way also verifies every tensor byte."""
        names = list(self._tensors) if names is None else list(names)
        out = {n: np.empty(self._meta(n)["shape"], dtype=numpy_dtype(self._meta(n)["dtype"])) for n in names}
        self._r.read_many(list(out.items()))
        return out

    def state(self, name: str) -> bytes:
        return self._r.read_state(name)

    def load(self, names: Optional[Iterable[str]] = None, rows: Optional[Tuple[int, int]] = None) -> Checkpoint:
        """The tensors (all, or `names`; rows: a dim-0 slice of each) and every state."""
        if rows is None:
            tensors = self.tensors(names)
        else:
            tensors = {n: self.tensor(n, rows) for n in (list(self._tensors) if names is None else names)}
        states = {s: self.state(s) for s in self.info["states"]}
        return Checkpoint(self.info, tensors, states)

    def verify(self) -> None:
        """Reads and authenticates every byte; CorruptionError names the first damaged tensor."""
        self._r.verify()

    def export_serving(self, path: Union[str, os.PathLike], *, alignment: int = 4096, hash_key: Union[bytes, str, None] = None,
                       metadata: Optional[Mapping[str, str]] = None) -> None:
        """Writes the tensors as a serving file (for load_weights); whole or absent."""
        key = hash_key.encode() if isinstance(hash_key, str) else bytes(hash_key or b"")
        self._r.export_serving(os.fspath(path), alignment, key, dict(metadata or {}))

    def export_safetensors(self, path: Union[str, os.PathLike]) -> None:
        self._r.export_safetensors(os.fspath(path))


def load_checkpoint(repo: Any, run: str, step: Optional[int] = None, *, names: Optional[Iterable[str]] = None,
                    rows: Optional[Tuple[int, int]] = None, latest_valid: bool = False, threads: int = 0) -> Checkpoint:
    """Loads checkpoint `step` of `run` (the newest when None; with latest_valid, the newest one
    that verifies)."""
    return CheckpointReader(repo, run, step, latest_valid=latest_valid, threads=threads).load(names, rows)


class Runs:
    """Experiment runs of a repository: params, tags, status, metric series, checkpoints."""

    def __init__(self, repo: Any):
        self._r = _strata._Runs(_native_repo(repo))

    def create(self, name: str, *, params: Optional[Mapping[str, Any]] = None, tags: Iterable[str] = (),
               dataset: str = "", loader_state: str = "", status: str = "") -> Dict[str, Any]:
        """Creates run `name` (AlreadyExistsError if present); dataset: NAME@REF it trains on."""
        self._r.create(name, {str(k): str(v) for k, v in (params or {}).items()}, set(tags), dataset,
                       loader_state, status)
        return self.get(name)

    def get(self, name: str) -> Dict[str, Any]:
        return self._r.get(name)

    def exists(self, name: str) -> bool:
        try:
            self._r.get(name)
            return True
        except _strata.NotFoundError:
            return False

    def list(self) -> List[Dict[str, Any]]:
        return self._r.list()

    def set_status(self, name: str, status: str) -> None:
        self._r.set_status(name, status)

    def log_metrics(self, name: str, step: int, metrics: Mapping[str, float]) -> None:
        self._r.log_metrics(name, [(int(step), str(k), float(v)) for k, v in metrics.items()])

    def metrics(self, name: str) -> List[Tuple[int, str, float]]:
        """The run's metric series: (step, name, value), in logging order."""
        return self._r.metrics(name)

    def checkpoints(self, name: str) -> List[Dict[str, Any]]:
        """Visible checkpoints, newest step first."""
        return self._r.checkpoints(name)

    def delete_checkpoint(self, name: str, step: int) -> None:
        self._r.delete_checkpoint(name, step)

    def label_checkpoint(self, name: str, step: int, label: str) -> None:
        self._r.label_checkpoint(name, step, label)

    def best(self, name: str, metric: str, k: int = 1, *, maximize: bool = False) -> List[Dict[str, Any]]:
        return self._r.best(name, metric, k, maximize)

    def retain(self, name: str, *, keep_last: int = 0, keep_best: int = 0, metric: str = "", maximize: bool = False,
               keep_labelled: bool = True, dry_run: bool = False) -> Dict[str, Any]:
        return self._r.retain(name, keep_last, keep_best, metric, maximize, keep_labelled, dry_run)


class Weights(Mapping[str, np.ndarray]):
    """A memory-mapped serving file: weights[name] is a read-only array over the mapping (no
    copy); each array keeps the mapping alive. BF16 loads as uint16 (dtypes[name] says BF16)."""

    def __init__(self, native: Any):
        self._w = native
        self._dtypes: Dict[str, str] = {}

    @property
    def metadata(self) -> Dict[str, str]:
        return self._w.metadata

    @property
    def dtypes(self) -> Dict[str, str]:
        for n in self._w.names:
            if n not in self._dtypes:
                self[n]
        return dict(self._dtypes)

    def __getitem__(self, name: str) -> np.ndarray:
        dtype, shape, raw = self._w.tensor(name)
        self._dtypes[name] = dtype
        return raw.view(numpy_dtype(dtype)).reshape(shape)

    def __iter__(self):
        return iter(self._w.names)

    def __len__(self) -> int:
        return len(self._w.names)

    def verify(self, names: Optional[Iterable[str]] = None) -> None:
        """Checks every tensor (or those named) not yet checked, on one thread per core;
        CorruptionError names the first mismatch."""
        if names is None:
            self._w.verify_all()
        else:
            self._w.verify(list(names))


def load_weights(path: Union[str, os.PathLike], *, verify: str = "on_demand",
                 hash_key: Union[bytes, str, None] = None) -> Weights:
    """Maps a serving file (written by `strata model export --format strata` or
    CheckpointReader.export_serving). verify: "on_demand" (each tensor's hash checked the first
    time it is returned), "full" (all checked now) or "none"."""
    key = hash_key.encode() if isinstance(hash_key, str) else bytes(hash_key or b"")
    return Weights(_strata._load_weights(os.fspath(path), verify, key))
