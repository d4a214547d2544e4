"""The model registry: numbered, immutable model versions made from run checkpoints, aliases
moved atomically (and audited), export and pull for serving, lineage back to the raw data."""
from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

from . import _strata
from ._checkpoint import _native_repo


def _signature(inputs: Optional[Sequence[Mapping[str, Any]]], outputs: Optional[Sequence[Mapping[str, Any]]]) -> str:
    if not inputs and not outputs:
        return ""
    norm = lambda ts: [{"name": t["name"], "dtype": t.get("dtype", ""), "shape": list(t.get("shape", []))} for t in ts or ()]
    return json.dumps({"inputs": norm(inputs), "outputs": norm(outputs)})


class Models:
    """The model registry of a repository (the same one `strata model ...` uses).

        models = strata.Models(repo)
        v = models.register("fmnist-cnn", "fm-a", metrics={"accuracy": 0.9},
                            inputs=[{"name": "image", "dtype": "F32", "shape": [-1, 1, 32, 32]}])
        models.set_alias("fmnist-cnn", "production", v["version"])
        models.export("fmnist-cnn@production", "/srv/fmnist.strata")
        strata.torch.load_weights("/srv/fmnist.strata", prefix="model/")

    Versions are dicts: model, version, run, step, data (NAME@COMMIT the run trained on),
    pipeline_hash, params, metrics, signature, description, aliases, commit, time_ns, author.
    A spec is NAME (the newest version), NAME@VERSION or NAME@ALIAS.
    """

    def __init__(self, repo: Any):
        self._m = _strata._Models(_native_repo(repo))

    def register(self, model: str, from_: str, *, metrics: Optional[Mapping[str, float]] = None,
                 inputs: Optional[Sequence[Mapping[str, Any]]] = None,
                 outputs: Optional[Sequence[Mapping[str, Any]]] = None, description: str = "") -> Dict[str, Any]:
        """A new version of `model` from a checkpoint: "RUN@STEP", or "RUN" (its newest).
        inputs/outputs: [{"name", "dtype" ("F32", ...), "shape" (-1 for any size)}]."""
        return self._m.register(model, from_, {str(k): float(v) for k, v in (metrics or {}).items()},
                                _signature(inputs, outputs), description)

    def list(self) -> List[str]:
        """The registered model names."""
        return list(self._m.models())

    def versions(self, model: str) -> List[Dict[str, Any]]:
        """Every version of `model`, oldest first."""
        return self._m.versions(model)

    def get(self, spec: str) -> Dict[str, Any]:
        return self._m.get(spec)

    def set_alias(self, model: str, alias: str, version: int) -> None:
        """Points `alias` at `version` (atomic; in the audit log)."""
        self._m.set_alias(model, alias, int(version))

    def delete_alias(self, model: str, alias: str) -> None:
        self._m.delete_alias(model, alias)

    def export(self, spec: str, path: Union[str, os.PathLike], *, format: str = "strata", alignment: int = 4096,
               hash_key: Union[bytes, str, None] = None) -> Dict[str, Any]:
        """Writes the version's weights to `path` (whole or absent): "strata" (a serving file
        for load_weights: aligned, memory-mappable, a hash per tensor) or "safetensors"."""
        key = hash_key.encode() if isinstance(hash_key, str) else bytes(hash_key or b"")
        return self._m.export(spec, os.fspath(path), format, int(alignment), key)

    def pull(self, spec: str, directory: Union[str, os.PathLike]) -> Dict[str, Any]:
        """A verified copy in `directory` (model.strata and model.json); a repeated pull reads
        only the tensors that changed. Returns counts of tensors and bytes (read and reused)."""
        return self._m.pull(spec, os.fspath(directory))

    def lineage(self, spec: str) -> Dict[str, Any]:
        """The chain back to the sources: nested {"kind", "label", "attrs", "inputs"}."""
        return self._m.lineage(spec)

    def lineage_dot(self, spec: str) -> str:
        """The lineage as Graphviz DOT."""
        return self._m.lineage_dot(spec)

    def trained_on(self, spec: str) -> List[Dict[str, Any]]:
        """Model versions whose lineage contains the commit that `spec` (NAME@REF) names."""
        return self._m.trained_on(spec)
