"""strata.augment: the online ops of a transform manifest, on numpy arrays and torch tensors."""
import json

import numpy as np
import pytest

from strata.augment import OnlineAugment

MANIFEST = {"augment": {"online": [{"op": "random_crop", "version": 1, "params": {"size": [4, 4], "padding": 1}},
                                   {"op": "flip", "version": 1, "params": {"axis": "horizontal", "probability": 0.5}}],
                        "field": "image", "layout": "chw", "seed": 3}}


def image(c=1, h=4, w=4):
    return np.arange(c * h * w, dtype=np.float32).reshape(c, h, w) + 1


def test_crops_and_flips_keep_the_shape_and_draw_anew_each_call():
    aug = OnlineAugment.from_manifest(json.dumps(MANIFEST))
    x = image()
    outs = [aug({"image": x, "label": 7}) for _ in range(40)]
    assert all(o["image"].shape == (1, 4, 4) and o["label"] == 7 for o in outs)
    # Every output is a 4x4 window of the zero-padded 6x6 image, mirrored or not.
    padded = np.pad(x[0], 1)
    windows = {padded[t:t + 4, l:l + 4].tobytes() for t in range(3) for l in range(3)}
    windows |= {np.flip(padded[t:t + 4, l:l + 4], 1).tobytes() for t in range(3) for l in range(3)}
    assert all(o["image"][0].tobytes() in windows for o in outs)
    assert len({o["image"].tobytes() for o in outs}) > 5  # not the same draw every time
    # The same seed repeats the same draws.
    again = OnlineAugment.from_manifest(MANIFEST)
    assert [again({"image": x})["image"].tobytes() for _ in range(40)] == [o["image"].tobytes() for o in outs]


def test_batches_are_augmented_per_sample_and_rotations_are_clockwise(tmp_path):
    spec = {"augment": {"online": [{"op": "rotate", "params": {"angle": 90, "probability": 1.0}}],
                        "layout": "hwc", "field": "x", "seed": 0}}
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(spec))
    aug = OnlineAugment.from_manifest(str(path))
    x = np.array([[1, 2], [3, 4]], dtype=np.uint8).reshape(2, 2, 1)
    out = aug({"x": np.stack([x, x])})["x"]
    assert out.shape == (2, 2, 2, 1)
    assert out[0, :, :, 0].tolist() == [[3, 1], [4, 2]]  # clockwise, as the offline op
    with pytest.raises(ValueError, match="square"):
        aug({"x": np.zeros((2, 3, 1), np.uint8)})
    with pytest.raises(ValueError, match="not one the loader applies"):
        OnlineAugment([{"op": "clahe", "params": {}}])


def test_torch_tensors():
    torch = pytest.importorskip("torch")
    aug = OnlineAugment.from_manifest(MANIFEST)
    batch = torch.from_numpy(np.stack([image(3), image(3)]))
    out = aug(batch)
    assert isinstance(out, torch.Tensor) and out.shape == (2, 3, 4, 4)
    # Manifests without online ops give an augmenter that changes nothing.
    same = OnlineAugment.from_manifest({"stats": {}})
    assert torch.equal(same(batch), batch)
