import numpy as np
import pytest

import strata


def make_run(repo, run="exp", steps=(10, 20)):
    rng = np.random.default_rng(7)
    w = {"model/fc.weight": rng.standard_normal((8, 4), dtype=np.float32),
         "model/fc.bias": rng.standard_normal((8,), dtype=np.float32)}
    strata.Runs(repo).create(run, params={"lr": 0.1})
    with strata.Checkpointer(repo, run) as c:
        for step in steps:
            c.save(step, {k: v * step for k, v in w.items()}, metrics={"loss": 1.0 / step})
    return w


def test_register_alias_list_and_diffable_versions(repo):
    make_run(repo)
    models = strata.Models(repo)
    v1 = models.register("cnn", "exp@10", metrics={"accuracy": 0.8},
                         inputs=[{"name": "x", "dtype": "F32", "shape": [-1, 4]}],
                         outputs=[{"name": "y", "dtype": "F32", "shape": [-1, 8]}], description="first")
    assert v1["version"] == 1 and v1["run"] == "exp" and v1["step"] == 10
    assert v1["metrics"] == {"loss": 0.1, "accuracy": 0.8} and v1["params"] == {"lr": "0.1"}
    assert v1["signature"]["inputs"] == [{"name": "x", "dtype": "F32", "shape": [-1, 4]}]
    v2 = models.register("cnn", "exp")  # the newest checkpoint
    assert v2["version"] == 2 and v2["step"] == 20
    models.set_alias("cnn", "production", 1)
    assert models.get("cnn@production")["version"] == 1
    assert models.get("cnn")["version"] == 2
    models.set_alias("cnn", "production", 2)
    assert models.get("cnn@production")["aliases"] == ["production"]
    assert models.list() == ["cnn"]
    assert [v["version"] for v in models.versions("cnn")] == [1, 2]
    models.delete_alias("cnn", "production")
    with pytest.raises(strata.NotFoundError):
        models.get("cnn@production")
    with pytest.raises(strata.InvalidArgumentError):
        models.register("cnn", "exp", inputs=[{"name": "x", "dtype": "NOPE"}])


def test_export_pull_and_load_weights(repo, tmp_path):
    w = make_run(repo)
    models = strata.Models(repo)
    models.register("cnn", "exp@20")
    path = tmp_path / "cnn.strata"
    assert models.export("cnn@1", path)["version"] == 1
    got = strata.load_weights(path, verify="full")
    np.testing.assert_array_equal(got["model/fc.weight"], w["model/fc.weight"] * 20)
    models.export("cnn@1", tmp_path / "cnn.safetensors", format="safetensors")
    assert (tmp_path / "cnn.safetensors").stat().st_size > 0
    with pytest.raises(strata.InvalidArgumentError):
        models.export("cnn@1", tmp_path / "x", format="onnx")
    first = models.pull("cnn@1", tmp_path / "host")
    assert first["tensors"] == 2 and first["tensors_reused"] == 0
    again = models.pull("cnn@1", tmp_path / "host")
    assert again["tensors_reused"] == 2 and again["bytes_read"] == 0
    np.testing.assert_array_equal(strata.load_weights(tmp_path / "host" / "model.strata")["model/fc.bias"],
                                  w["model/fc.bias"] * 20)


def test_lineage_and_trained_on(repo, tmp_path):
    src = tmp_path / "raw"
    src.mkdir()
    (src / "a.txt").write_text("hello")
    repo.create_dataset("fm")
    repo.commit("fm@main", src, message="raw")
    strata.Runs(repo).create("exp", dataset="fm@main")
    with strata.Checkpointer(repo, "exp") as c:
        c.save(1, {"w": np.zeros(3, np.float32)})
    models = strata.Models(repo)
    models.register("cnn", "exp")
    chain = models.lineage("cnn@1")
    kinds = []
    node = chain
    while node:
        kinds.append(node["kind"])
        node = node["inputs"][0] if node["inputs"] else None
    assert kinds[:3] == ["model", "checkpoint", "run"] and kinds[3] in ("dataset", "ingest")
    assert "->" in models.lineage_dot("cnn@1")
    assert [v["model"] for v in models.trained_on("fm@main")] == ["cnn"]
