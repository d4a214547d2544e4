"""Transforms and curation from Python (strata._strata_data, loaded on first use)."""
import json

import numpy as np
import pytest

import strata


def pgm(rows, cols, value):
    return f"P5\n{cols} {rows}\n255\n".encode() + bytes([value % 256]) * (rows * cols)


def test_transform_and_curate_run_on_the_open_repository(repo, tmp_path):
    src = tmp_path / "img"
    for label in ("cat", "dog"):
        (src / label).mkdir(parents=True)
        for i in range(3):
            (src / label / f"{i}.pgm").write_bytes(pgm(6, 5, 40 * i + (label == "dog")))
    (src / "dog" / "broken.pgm").write_bytes(b"P5\n4 4\n255\nshort")
    repo.create_dataset("pets")
    repo.ingest(src, "pets@main", image_folder=True)

    # Curation: the broken image is quarantined.
    rules = 'images:\n  files: ["*.pgm"]\n'
    cur = repo.curate("pets@main", "pets@clean", rules)
    assert cur["records_before"] == 7 and cur["records_after"] == 6
    assert [q["path"] for q in cur["quarantined"]] == ["dog/broken.pgm"]
    assert json.loads(cur["report_json"])

    # A transform of the curated branch, pipeline given as text; shards read back.
    pipeline = "label: {column: label}\nops:\n  - decode: {mode: grayscale}\n  - tensor: {dtype: uint8}\n" \
               "augment: {online: [{flip: {probability: 0.5}}]}\n"
    rep = repo.transform("pets@clean", "pets@ready", pipeline, threads=2)
    assert rep["records"] == 6 and rep["failed"] == 0 and not rep["up_to_date"]
    manifest = json.loads(rep["manifest"])
    assert manifest["classes"] == ["cat", "dog"]
    out = tmp_path / "out"
    repo.checkout("pets@ready:shards", out)
    ds = strata.Dataset(out)
    assert len(ds) == 6
    rec = ds[0]
    assert rec["image"].shape == (1, 6, 5) and rec["label"] in (0, 1)
    aug = strata.augment.OnlineAugment.from_manifest(manifest)
    assert aug(rec)["image"].shape == (1, 6, 5)
    # The same input and pipeline again: nothing computed.
    assert repo.transform("pets@clean", "pets@ready", pipeline)["up_to_date"]

    # Errors are strata.Error subclasses naming the problem; the branch does not move.
    with pytest.raises(strata.InvalidArgumentError, match="unknown op 'frobnicate'"):
        repo.transform("pets@clean", "pets@ready", "ops: [decode, frobnicate]\n")
    with pytest.raises(strata.NotFoundError):
        repo.transform("nosuch@main", "pets@x", pipeline)
    path = tmp_path / "p.yaml"
    path.write_text(pipeline)
    assert repo.transform("pets@clean", "pets@ready", path)["up_to_date"]
