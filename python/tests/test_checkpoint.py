import os
import shutil
import subprocess

import numpy as np
import pytest

import strata

PASS = "test passphrase"


def arrays(seed):
    rng = np.random.default_rng(seed)
    return {
        "w": rng.standard_normal((64, 33), dtype=np.float32),
        "bf": rng.integers(0, 1 << 16, (17, 5), dtype=np.uint16),  # bfloat16 bits
        "ids": rng.integers(-(1 << 40), 1 << 40, (100,), dtype=np.int64),
        "scalar": np.array(3.5, dtype=np.float64),
        "empty": np.zeros((0, 4), dtype=np.float32),
    }


def test_round_trip_bit_exact(repo):
    a = arrays(1)
    with strata.Checkpointer(repo, "exp") as c:
        c.save(10, a, states={"opt": b"\x00\x01state"}, meta={"lr": 0.1}, metrics={"loss": 0.5},
               dtypes={"bf": "BF16"})
        a2 = arrays(2)
        c.save(20, a2, dtypes={"bf": "BF16"})
        a2["w"][:] = 0  # the save copied the arrays: changing them now changes nothing
    runs = strata.Runs(repo)
    assert [ck["step"] for ck in runs.checkpoints("exp")] == [20, 10]

    ck = strata.load_checkpoint(repo, "exp", 10)
    assert ck.step == 10 and ck.states == {"opt": b"\x00\x01state"}
    assert ck.meta == {"lr": "0.1"} and ck.metrics == {"loss": 0.5}
    assert ck.dtypes["bf"] == "BF16" and ck.dtypes["w"] == "F32" and ck.dtypes["ids"] == "I64"
    for name, want in a.items():
        got = ck.tensors[name]
        assert got.shape == want.shape and got.tobytes() == want.tobytes(), name
    latest = strata.load_checkpoint(repo, "exp")
    assert latest.step == 20
    assert latest.tensors["w"].tobytes() == arrays(2)["w"].tobytes()

    r = strata.CheckpointReader(repo, "exp", 10)
    np.testing.assert_array_equal(r.tensor("w", rows=(5, 9)), a["w"][5:9])
    sub = r.load(names=["ids"], rows=(10, 20))
    np.testing.assert_array_equal(sub.tensors["ids"], a["ids"][10:20])
    r.verify()
    with pytest.raises(strata.NotFoundError):
        r.tensor("nope")


def test_noncontiguous_and_big_endian_inputs(repo):
    base = np.arange(60, dtype=np.float32).reshape(6, 10)
    with strata.Checkpointer(repo, "nc") as c:
        c.save(1, {"t": base.T, "be": base.astype(">f4")})
    ck = strata.load_checkpoint(repo, "nc")
    np.testing.assert_array_equal(ck.tensors["t"], base.T)
    np.testing.assert_array_equal(ck.tensors["be"], base)


def test_async_error_surfaces_on_next_call(repo):
    done = []
    c = strata.Checkpointer(repo, "dup", on_complete=lambda err, info: done.append((err, info["step"])))
    c.save(1, {"x": np.ones(4, np.float32)})
    c.wait()
    c.save(1, {"x": np.zeros(4, np.float32)})  # the same step again: fails in the background
    with pytest.raises(strata.AlreadyExistsError):
        c.wait()
    c.save(2, {"x": np.zeros(4, np.float32)})  # reported once; the next save works
    c.wait()
    c.save(2, {"x": np.zeros(4, np.float32)})
    with pytest.raises(strata.AlreadyExistsError):
        # the background failure is raised by the next save, which is not started
        for _ in range(200):
            c.save(3, {"x": np.zeros(4, np.float32)})
            c.wait()
    c.close()
    assert done[0] == (None, 1) and done[1][0] is not None
    with pytest.raises(strata.PreconditionError):
        c.save(5, {"x": np.zeros(4, np.float32)})
    assert strata.load_checkpoint(repo, "dup", 1).tensors["x"].tolist() == [1, 1, 1, 1]


def test_invalid_save_raises_now(repo):
    with strata.Checkpointer(repo, "bad") as c:
        with pytest.raises(strata.InvalidArgumentError):
            c.save(-1, {"x": np.ones(2, np.float32)})
        with pytest.raises(strata.InvalidArgumentError):
            c.save(1, {"x": np.ones(2, np.float32)}, dtypes={"x": "BF16"})  # 4-byte elements
        with pytest.raises(TypeError):
            c.save(1, {"x": np.ones(2, np.complex64)})


def pack_files(root):
    out = []
    for d, _, files in os.walk(root):
        if "/packs" in d.replace(os.sep, "/") + "/" and "packs" in d.split(os.sep):
            out += [os.path.join(d, f) for f in files]
    return set(out)


def flip_a_byte_in_the_largest_new_pack(path, before):
    fresh = sorted(pack_files(path) - before, key=os.path.getsize)
    assert fresh, "no new pack file"
    victim = fresh[-1]
    with open(victim, "r+b") as f:
        f.seek(os.path.getsize(victim) // 2)
        b = f.read(1)
        f.seek(os.path.getsize(victim) // 2)
        f.write(bytes([b[0] ^ 0x10]))


def test_latest_valid_falls_back_after_a_flipped_byte(tmp_path):
    path = tmp_path / "repo"
    repo = strata.Repository.init(path, passphrase=PASS, kdf_mem=8 << 20, kdf_ops=1)
    rng = np.random.default_rng(7)
    good = rng.standard_normal((512, 1024), dtype=np.float32)
    with strata.Checkpointer(repo, "flip") as c:
        c.save(1, {"alpha": good})
    before = pack_files(path)
    with strata.Checkpointer(repo, "flip") as c:
        c.save(2, {"alpha": rng.standard_normal((512, 1024), dtype=np.float32)})
    repo.close()
    flip_a_byte_in_the_largest_new_pack(path, before)

    repo = strata.Repository.open(path, passphrase=PASS)
    try:
        r = strata.CheckpointReader(repo, "flip", 2)
        with pytest.raises(strata.CorruptionError, match="alpha"):
            r.verify()
        with pytest.raises(strata.CorruptionError, match="alpha"):
            r.tensor("alpha")
        ck = strata.load_checkpoint(repo, "flip", latest_valid=True)
        assert ck.step == 1 and ck.tensors["alpha"].tobytes() == good.tobytes()
    finally:
        repo.close()


def test_runs_params_metrics(repo):
    runs = strata.Runs(repo)
    info = runs.create("r1", params={"lr": 0.01, "bs": 32}, tags=["baseline"])
    assert info["params"] == {"lr": "0.01", "bs": "32"} and info["tags"] == {"baseline"}
    with pytest.raises(strata.AlreadyExistsError):
        runs.create("r1")
    assert runs.exists("r1") and not runs.exists("r2")
    runs.log_metrics("r1", 1, {"loss": 2.0})
    runs.log_metrics("r1", 2, {"loss": 1.0, "acc": 0.5})
    assert runs.metrics("r1") == [(1, "loss", 2.0), (2, "acc", 0.5), (2, "loss", 1.0)] or \
        sorted(runs.metrics("r1")) == sorted([(1, "loss", 2.0), (2, "loss", 1.0), (2, "acc", 0.5)])
    runs.set_status("r1", "finished")
    assert runs.get("r1")["status"] == "finished"
    with strata.Checkpointer(repo, "r1") as c:
        for step, loss in [(1, 3.0), (2, 1.0), (3, 2.0)]:
            c.save(step, {"x": np.full(3, step, np.float32)}, metrics={"loss": loss})
    assert [b["step"] for b in runs.best("r1", "loss", 2)] == [2, 3]
    res = runs.retain("r1", keep_last=1, keep_best=1, metric="loss")
    assert sorted(res["kept"]) == [2, 3] and res["removed"] == [1]
    assert [c["step"] for c in runs.checkpoints("r1")] == [3, 2]
    assert "r1" in [r["name"] for r in runs.list()]


def test_load_weights_zero_copy(repo, tmp_path):
    a = arrays(3)
    with strata.Checkpointer(repo, "serve") as c:
        c.save(1, a, dtypes={"bf": "BF16"})
    path = tmp_path / "model.strata"
    strata.CheckpointReader(repo, "serve").export_serving(path, metadata={"who": "test"})
    w = strata.load_weights(path)
    assert sorted(w) == sorted(a) and w.metadata.get("who") == "test"
    views = {}
    for name, want in a.items():
        got = w[name]
        assert got.shape == want.shape and got.tobytes() == want.tobytes(), name
        assert not got.flags.writeable and not got.flags.owndata
        views[name] = got
    assert w.dtypes["bf"] == "BF16"
    # Two views of one tensor share the mapping's memory: no copy was made.
    assert np.shares_memory(w["w"], views["w"])
    w.verify()
    # The arrays keep the mapping alive after the Weights object is gone.
    del w
    import gc

    gc.collect()
    assert views["w"].tobytes() == a["w"].tobytes()
    full = strata.load_weights(path, verify="full")
    assert len(full) == len(a)
    with pytest.raises(strata.InvalidArgumentError):
        strata.load_weights(path, verify="sometimes")


def test_load_weights_detects_damage(repo, tmp_path):
    x = np.arange(4096, dtype=np.float32)
    with strata.Checkpointer(repo, "dmg") as c:
        c.save(1, {"x": x})
    path = tmp_path / "model.strata"
    strata.CheckpointReader(repo, "dmg").export_serving(path, hash_key=b"k\xff")
    data = bytearray(path.read_bytes())
    data[-100] ^= 1  # inside the tensor's bytes (the last thing in the file)
    bad = tmp_path / "bad.strata"
    bad.write_bytes(bytes(data))
    assert strata.load_weights(path, hash_key=b"k\xff")["x"].tobytes() == x.tobytes()
    with pytest.raises(strata.CorruptionError, match="x"):
        strata.load_weights(bad, hash_key=b"k\xff")["x"]
    with pytest.raises(strata.CorruptionError, match="x"):
        strata.load_weights(bad, hash_key=b"k\xff").verify(["x"])
    assert strata.load_weights(bad, hash_key=b"k\xff", verify="none")["x"].shape == (4096,)


def _strata_cli():
    """$STRATA_CLI, else a `strata` binary with the model commands in a build tree of this
    checkout or on PATH."""
    if os.environ.get("STRATA_CLI"):
        return os.environ["STRATA_CLI"]
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    candidates = sorted(p for p in (os.path.join(root, d, "strata") for d in os.listdir(root) if d.startswith("build"))
                        if os.path.isfile(p) and os.access(p, os.X_OK))
    if shutil.which("strata"):
        candidates.append(shutil.which("strata"))
    for p in candidates:
        r = subprocess.run([p, "model", "export", "--help"], capture_output=True, text=True)
        if r.returncode == 0 and "--format" in r.stdout:
            return p
    return None


def test_load_weights_of_cli_export(tmp_path):
    cli = _strata_cli()
    if cli is None:
        pytest.skip("no strata binary built")
    path = tmp_path / "repo"
    repo = strata.Repository.init(path, passphrase=PASS, kdf_mem=8 << 20, kdf_ops=1)
    w = np.random.default_rng(0).standard_normal((33, 7), dtype=np.float32)
    with strata.Checkpointer(repo, "cli") as c:
        c.save(5, {"w": w})
    repo.close()
    env = dict(os.environ, STRATA_PASSWORD=PASS, STRATA_REPO=str(path))
    run = lambda *args: subprocess.run([cli, *args], env=env, capture_output=True, text=True)  # noqa: E731
    r = run("model", "register", "m", "--from", "cli@5")
    if r.returncode != 0:
        pytest.skip(f"the strata binary cannot register: {r.stderr.strip()[:200]}")
    out = tmp_path / "m.strata"
    r = run("model", "export", "m", "--format", "strata", str(out))
    assert r.returncode == 0, r.stderr
    got = strata.load_weights(out)["w"]
    assert got.tobytes() == w.tobytes() and not got.flags.owndata


def _torch_setup(torch, seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    model.register_buffer("bf", torch.randn(4, 4).to(torch.bfloat16))
    model.register_buffer("count", torch.arange(5, dtype=torch.int64))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    return model, opt


def _train(torch, model, opt, steps):
    losses = []
    for _ in range(steps):
        x = torch.randn(32, 8)
        y = torch.randint(0, 3, (32,))
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def test_torch_save_load_resumes_identically(repo):
    torch = pytest.importorskip("torch")
    import strata.torch as st

    model, opt = _torch_setup(torch)
    _train(torch, model, opt, 5)
    st.save(model, opt, step=5, run="t", repo=repo, extra={"epoch": 1, "note": (1, "a")}, metrics={"loss": 1.0})
    reference = _train(torch, model, opt, 5)  # what the run does after step 5
    final = {k: v.clone() for k, v in model.state_dict().items()}

    model2, opt2 = _torch_setup(torch, seed=99)
    got = st.load(model2, opt2, repo=repo, run="t", rng=True)
    assert got["step"] == 5 and got["extra"] == {"epoch": 1, "note": (1, "a")} and got["metrics"] == {"loss": 1.0}
    assert model2.bf.dtype == torch.bfloat16
    resumed = _train(torch, model2, opt2, 5)
    assert resumed == reference
    for k, v in model2.state_dict().items():
        assert torch.equal(v, final[k]), k


def test_torch_load_falls_back_past_a_damaged_checkpoint(tmp_path):
    torch = pytest.importorskip("torch")
    import strata.torch as st

    path = tmp_path / "repo"
    repo = strata.Repository.init(path, passphrase=PASS, kdf_mem=8 << 20, kdf_ops=1)
    model, opt = _torch_setup(torch)
    model.register_buffer("table", torch.randn(512, 1024))  # most of each checkpoint's bytes
    st.save(model, opt, step=1, run="t", repo=repo)
    good = {k: v.clone() for k, v in model.state_dict().items()}
    before = pack_files(path)
    with torch.no_grad():
        model.table.add_(1.0)
    st.save(model, opt, step=2, run="t", repo=repo)
    repo.close()
    flip_a_byte_in_the_largest_new_pack(path, before)

    repo = strata.Repository.open(path, passphrase=PASS)
    try:
        model2, opt2 = _torch_setup(torch, seed=99)
        model2.register_buffer("table", torch.zeros(512, 1024))
        with pytest.raises(strata.CorruptionError, match="table"):
            st.load(model2, opt2, repo=repo, run="t", latest_valid=False)
        assert torch.equal(model2.table, torch.zeros(512, 1024)), "a failed load changed the model"
        with pytest.warns(UserWarning, match="skipping damaged checkpoint"):
            got = st.load(model2, opt2, repo=repo, run="t")
        assert got["step"] == 1
        for k, v in model2.state_dict().items():
            assert torch.equal(v, good[k]), k
        with pytest.raises(strata.NotFoundError):
            st.load(model2, repo=repo, run="t", step=3)
    finally:
        repo.close()


def test_torch_sharded_save_loads_with_any_world_size(repo):
    torch = pytest.importorskip("torch")
    import strata.torch as st

    model, opt = _torch_setup(torch)
    model.register_buffer("table", torch.randn(1000, 300))  # 1.2 MB: cut into one slice per rank
    _train(torch, model, opt, 3)
    want = {k: v.clone() for k, v in model.state_dict().items()}
    for r in range(3):
        with st.AsyncCheckpointer(repo, "ddp", rank=r, world_size=3) as c:
            c.save(7, model, opt, extra={"rank": r})
        if r < 2:
            assert not strata.Runs(repo).checkpoints("ddp"), "visible before every rank's part"
    info = strata.CheckpointReader(repo, "ddp").info
    pieces = {t["name"]: t["pieces"] for t in info["tensors"]}
    assert pieces["model/table"] == 3 and pieces["model/0.weight"] == 1
    assert sorted(info["states"]) == [f"rank{r}/strata.torch" for r in range(3)]

    reference = _train(torch, model, opt, 3)
    for rank, extra in ((1, 1), (5, 0)):  # its own part; more ranks now than saved: rank 0's
        model2, opt2 = _torch_setup(torch, seed=99)
        model2.register_buffer("table", torch.zeros(1000, 300))
        got = st.load(model2, opt2, repo=repo, run="ddp", rank=rank, rng=True)
        assert got["step"] == 7 and got["extra"] == {"rank": extra}
        for k, v in model2.state_dict().items():
            assert torch.equal(v, want[k]), k
    assert _train(torch, model2, opt2, 3) == reference


def test_torch_async_checkpointer_and_weights(repo, tmp_path):
    torch = pytest.importorskip("torch")
    import strata.torch as st

    model, opt = _torch_setup(torch)
    with st.AsyncCheckpointer(repo, "a") as ck:
        assert ck.resume(model, opt) is None
        for step in range(1, 4):
            _train(torch, model, opt, 1)
            ck.save(step, model, opt, metrics={"loss": float(step)})
    assert [c["step"] for c in strata.Runs(repo).checkpoints("a")] == [3, 2, 1]
    model2, opt2 = _torch_setup(torch, seed=3)
    with st.AsyncCheckpointer(repo, "a") as ck:
        assert ck.resume(model2, opt2) == 3
    for k, v in model.state_dict().items():
        assert torch.equal(model2.state_dict()[k], v), k

    path = tmp_path / "m.strata"
    strata.CheckpointReader(repo, "a").export_serving(path)
    weights = st.load_weights(path, prefix="model/")
    assert set(weights) == set(model.state_dict())
    for k, v in model.state_dict().items():
        assert weights[k].dtype == v.dtype and torch.equal(weights[k], v), k
    # Over the mapping: the tensor's memory is the numpy view's.
    raw = strata.load_weights(path)["model/0.weight"]
    t = st.load_weights(path, prefix="model/")["0.weight"]
    assert t.data_ptr() != 0 and t.numpy().base is not None
    assert raw.ctypes.data % 64 == 0


def test_import_torch_save_file(repo, tmp_path):
    torch = pytest.importorskip("torch")
    import strata.torch as st

    model, opt = _torch_setup(torch)
    _train(torch, model, opt, 3)
    path = tmp_path / "ckpt.pt"
    torch.save({"model_state_dict": model.state_dict(), "optimizer_state_dict": opt.state_dict(), "epoch": 7}, path)
    torch.manual_seed(42)
    reference = _train(torch, model, opt, 3)
    got = st.import_torch_file(path, repo=repo, run="imported", step=300)
    assert got["step"] == 300 and got["extra"] == ["epoch"] and "0.weight" in got["model"]
    model2, opt2 = _torch_setup(torch, seed=5)
    loaded = st.load(model2, opt2, repo=repo, run="imported")
    assert loaded["step"] == 300 and loaded["extra"] == {"epoch": 7}
    torch.manual_seed(42)
    assert _train(torch, model2, opt2, 3) == reference  # optimizer state came along

    # A bare state_dict is the model.
    bare = tmp_path / "bare.pt"
    torch.save(model.state_dict(), bare)
    assert st.import_torch_file(bare, repo=repo, run="imported", step=301)["optimizer"] == []
    model3, _ = _torch_setup(torch, seed=6)
    st.load(model3, repo=repo, run="imported", step=301)
    for k, v in model.state_dict().items():
        assert torch.equal(model3.state_dict()[k], v), k

    # A pickle that would run code is refused, and nothing is stored.
    class Evil:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    evil = tmp_path / "evil.pt"
    torch.save({"model": {"w": torch.zeros(2)}, "x": Evil()}, evil)
    with pytest.raises(ValueError, match="posix.system"):
        st.import_torch_file(evil, repo=repo, run="imported", step=302)
    assert not (tmp_path / "pwned").exists()
    torch.save(model.state_dict(), tmp_path / "old.pt", _use_new_zipfile_serialization=False)
    with pytest.raises(ValueError, match="legacy format"):
        st.import_torch_file(tmp_path / "old.pt", repo=repo, run="imported", step=303)
    assert st.import_torch_file(tmp_path / "old.pt", repo=repo, run="imported", step=303, trusted=True)["step"] == 303
    assert [c["step"] for c in strata.Runs(repo).checkpoints("imported")] == [303, 301, 300]
