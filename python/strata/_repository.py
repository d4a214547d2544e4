"""strata.Repository: a repository and its versioned datasets."""
from __future__ import annotations

import io
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import numpy as np

from . import _strata


class File(io.RawIOBase):
    """A stored file, read-only and seekable; every chunk is authenticated before it is returned.

    Wrap it in io.BufferedReader (or use it directly: reads go to the repository)."""

    def __init__(self, native: Any, name: str):
        super().__init__()
        self._f = native
        self._pos = 0
        self.name = name

    @property
    def size(self) -> int:
        return self._f.size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._f.size}[whence]
        if base + offset < 0:
            raise ValueError("negative seek position")
        self._pos = base + offset
        return self._pos

    def readinto(self, buffer) -> int:
        view = memoryview(buffer).cast("B")
        n = self._f.readinto_at(self._pos, np.frombuffer(view, dtype=np.uint8))
        self._pos += n
        return n

    def read(self, size: int = -1) -> bytes:
        data = self._f.read_at(self._pos, size if size is not None else -1)
        self._pos += len(data)
        return data

    def readall(self) -> bytes:
        return self.read(-1)


def _yaml_arg(value: Union[str, os.PathLike]) -> "tuple[str, str]":
    """(YAML text, a name for messages) from a path or from the text itself."""
    if isinstance(value, os.PathLike) or ("\n" not in value and os.path.exists(value)):
        path = os.fspath(value)
        with open(path, encoding="utf-8") as f:
            return f.read(), os.path.basename(path)
    return value, "pipeline"


class Repository:
    """One strata repository (a local directory), with its datasets.

    References are written ``NAME@REF[:PATH]`` everywhere, REF being a branch, a tag or a commit
    id prefix. Errors raise strata.Error subclasses (NotFoundError, CorruptionError, ...), with
    the message the command-line tool prints.
    """

    def __init__(self, native: Any):
        self._r = native

    # --- opening ---
    @classmethod
    def open(cls, url: Optional[str] = None, *, passphrase: Optional[str] = None,
             password_file: Optional[str] = None, threads: int = 0) -> "Repository":
        """Opens a repository as `strata` does: `url` or $STRATA_REPO; the passphrase given, read
        from `password_file`, keys cached by `strata unlock`, $STRATA_PASSWORD, or a prompt on a
        terminal, in that order."""
        return cls(_strata._Repository.open(os.fspath(url) if url is not None else None,
                                            passphrase, _path(password_file), threads))

    @classmethod
    def init(cls, url: str, *, passphrase: Optional[str] = None, password_file: Optional[str] = None,
             kdf_mem: int = 0, kdf_ops: int = 0, compression_level: int = 3, threads: int = 0) -> "Repository":
        """Creates an encrypted repository at `url` (kdf_mem/kdf_ops: Argon2id's cost; 0 is the
        default, 64 MiB and 2 passes)."""
        return cls(_strata._Repository.init(os.fspath(url), passphrase, _path(password_file),
                                            kdf_mem, kdf_ops, compression_level, threads))

    def close(self) -> None:
        self._r.close()

    def __enter__(self) -> "Repository":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def url(self) -> str:
        return self._r.url

    # --- datasets, branches, tags ---
    def datasets(self) -> List[str]:
        return self._r.datasets()

    def create_dataset(self, name: str) -> None:
        """Creates `name` with an empty branch `main`."""
        self._r.create_dataset(name)

    def delete_dataset(self, name: str) -> None:
        self._r.delete_dataset(name)

    def refs(self, dataset: str) -> List[_strata.Ref]:
        return self._r.refs(dataset)

    def branches(self, dataset: str) -> List[str]:
        return [r.name for r in self._r.refs(dataset) if r.type == "branch"]

    def tags(self, dataset: str) -> List[str]:
        return [r.name for r in self._r.refs(dataset) if r.type == "tag"]

    def create_branch(self, name: str, source: str) -> None:
        """`name` is NAME@BRANCH, `source` any NAME@REF."""
        self._r.create_ref(name, source, False)

    def create_tag(self, name: str, source: str, protect: bool = False) -> None:
        self._r.create_ref(name, source, True)
        if protect:
            self._r.protect_ref(name, True)

    def delete_ref(self, name: str) -> None:
        self._r.delete_ref(name)

    def protect(self, name: str, on: bool = True) -> None:
        self._r.protect_ref(name, on)

    def resolve(self, spec: str) -> _strata.Commit:
        return self._r.resolve(spec)

    def log(self, spec: str, limit: int = 100) -> List[_strata.Commit]:
        """The commit `spec` names and its first-parent ancestors, newest first."""
        return self._r.log(spec, limit)

    # --- commits ---
    def commit(self, target: str, directory: os.PathLike | str, message: str = "",
               meta: Optional[Mapping[str, Any]] = None, author: str = "", retry: bool = False) -> Dict[str, Any]:
        """Records `directory` as the new state of branch `target` (NAME@BRANCH). Unchanged files
        (size and mtime) are not read again; nothing is committed when nothing changed
        (result["unchanged"])."""
        return self._r.commit(target, os.fspath(directory), message, dict(meta) if meta else None, author, retry)

    def set_records(self, target: str, records: Mapping[str, Mapping[str, Any]], message: str = "") -> Dict[str, Any]:
        """A metadata-only commit: sets columns of the records keyed by path (None removes one)."""
        return self._r.set_records(target, dict(records), message)

    def reset(self, target: str, to: str) -> str:
        """Points branch `target` at the commit `to` names; returns the old head."""
        return self._r.reset(target, to)

    def diff(self, a: str, b: str, path: str = "") -> List[Dict[str, Any]]:
        return self._r.diff(a, b, path)

    def ingest(self, source: str, target: str, *, prefix: str = "", format: str = "auto",
               image_folder: bool = False, labels_csv: str = "", query: str = "", replace: bool = False,
               message: str = "", meta: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
        """Ingests a directory, archive, CSV/JSONL, IDX file or SQL query into one commit on
        `target` (as `strata ingest`); returns the report (files, records, rejects, commit)."""
        return self._r.ingest(os.fspath(source), target, prefix, format, image_folder, labels_csv, query,
                              replace, message, dict(meta) if meta else None)

    # --- transforms and curation (strata._strata_data, imported on first use) ---
    def transform(self, input: str, output: str, pipeline: Union[str, os.PathLike], *, threads: int = 0,
                  memory_mib: int = 0, force: bool = False, message: str = "",
                  meta: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
        """Runs a transform pipeline over `input` (NAME@REF[:PATH]) into shards on `output`
        (NAME@BRANCH), as `strata transform`. `pipeline` is a YAML file's path or YAML text.
        Returns the report: records, failed, errors, shards, manifest (text), commit, ...; an
        up-to-date output computes nothing (`up_to_date`). A run that was killed or failed is
        resumed from the shards it finished (`resumed_records`; force=True starts over)."""
        from . import _strata_data
        text, name = _yaml_arg(pipeline)
        return _strata_data.transform(self._r, input, output, text, name, threads, memory_mib, force, message,
                                      dict(meta) if meta else None)

    def curate(self, source: str, target: str, rules: Union[str, os.PathLike], *, message: str = "",
               meta: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
        """Applies curation rules (a YAML file's path or YAML text) to `source` and commits what
        passes to branch `target`, as `strata curate`. Returns the report: records_before/after,
        per_rule, quarantined (path, rule, reason), commit, report_json."""
        from . import _strata_data
        text, _ = _yaml_arg(rules)
        return _strata_data.curate(self._r, source, target, text, message, dict(meta) if meta else None)

    # --- content ---
    def ls(self, spec: str, recursive: bool = False) -> List[_strata.Entry]:
        return self._r.ls(spec, recursive)

    def open_file(self, spec: str) -> File:
        """A seekable, read-only file object over NAME@REF:PATH."""
        return File(self._r.open_file(spec), spec)

    def cat(self, spec: str) -> bytes:
        """The whole content of NAME@REF:PATH."""
        return self._r.open_file(spec).read_at(0, -1)

    def cache_version(self, spec: str, dir: os.PathLike | str, *, columns: Sequence[str] = (),
                      key: Optional[bytes] = None, shard_size: int = 256 << 20, max_bytes: int = 0,
                      progress: bool = False) -> Dict[str, Any]:
        """The files of NAME@REF[:PATH] as shards in the local cache directory `dir`, built on
        first use and found again after (by commit id, so never stale): one record per file,
        {"path": str, "data": bytes, and each of `columns` from the file's record metadata}, in
        path order. Read them with strata.Loader / strata.torch (LakeDataset does all of it).
        `key` (32 bytes) seals the cached records; without it they are plaintext on that disk.
        `max_bytes` evicts least recently used entries beyond it. Returns dir, shards, commit,
        path, records, file_bytes, built, evicted."""
        return self._r.cache_version(spec, os.fspath(dir), list(columns), key, shard_size, max_bytes, progress)

    def checkout(self, spec: str, dest: os.PathLike | str) -> int:
        """Restores NAME@REF[:PATH] into directory `dest`; returns the bytes written."""
        return self._r.checkout(spec, os.fspath(dest))

    # --- records ---
    def records(self, spec: str) -> List[Dict[str, Any]]:
        """One dict per file (path, size, content, and its metadata) and per table row."""
        return self._r.records(spec)

    def query(self, spec: str, sql: str) -> List[Dict[str, Any]]:
        """Read-only SQL over the records (table `records`), one dict per row."""
        return self._r.query(spec, sql)

    def query_arrays(self, spec: str, sql: str) -> Dict[str, np.ndarray]:
        """The same, one numpy array per column (int64, float64, bool, or object)."""
        return self._r.query_arrays(spec, sql)

    # --- the store ---
    def verify(self, read_data: bool = False) -> Dict[str, Any]:
        return self._r.verify(read_data)

    def stats(self) -> Dict[str, Any]:
        return self._r.stats()

    def __repr__(self) -> str:
        return f"<strata.Repository {self.url}>"


def _path(p):
    return os.fspath(p) if p is not None else None
