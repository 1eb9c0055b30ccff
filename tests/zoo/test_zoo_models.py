"""Each architecture through the real loader and the Zoo operator: description, tiled == untiled,
range policy, alpha, determinism. Models are random (tests/zoo/conftest.py)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bake_node.engine import halving_on_oom, run_blended, tile_starts
from bake_node.errors import DeviceError
from bake_node.node import get_operator


def frame(h, w, seed=0):
    return np.random.default_rng(seed).random((h, w, 3), dtype=np.float32)


def zoo(path, **settings):
    op = get_operator("zoo")
    op.prepare({"weights": path, "device": "cpu", "tile": 0, **settings})
    calls = []
    run_model = op._call
    op._call = lambda crop: calls.append(tuple(crop.shape[2:])) or run_model(crop)
    return op, calls


# (model, frame size, tile, overlap, tolerance). The blend window gives zero weight to the outer
# quarter of the overlap at an interior tile edge, so a model whose receptive radius is at most
# overlap/4 sees, for every pixel that counts, the same input as in a whole-frame pass: tiled and
# untiled then differ only by float rounding (convolutions over other extents sum in other orders).
# Radii: Compact(2 convs) 4 px; RRDB(1 block) ~19 px; SwinIR(window 4, one shifted pair) ~12 px,
# with tiles on the 4 px window grid. (The x2plus RRDB, ~38 px at half resolution, would need
# 320 px tiles: too slow here; its multiple-of-4 padding is tested below.)
EXACT = [
    ("compact", (50, 70), 32, 16),
    ("rrdb", (172, 176), 160, 80),
    ("swinir", (150, 170), 128, 64),
]
ROUNDING = 1e-5


@pytest.mark.parametrize("name,size,tile,overlap", EXACT, ids=[e[0] for e in EXACT])
def test_tiled_matches_untiled_when_the_receptive_field_fits_the_overlap(zoo_weights, name, size, tile, overlap):
    rgb = frame(*size)
    whole, whole_calls = zoo(zoo_weights(name))
    tiled, tiled_calls = zoo(zoo_weights(name), tile=tile, zoo_overlap=overlap)
    a, b = whole.process(rgb, 1), tiled.process(rgb, 1)
    assert a.shape == b.shape == (size[0] * 2, size[1] * 2, 3)
    assert len(whole_calls) == 1 and len(tiled_calls) >= 4  # really tiled: at least 2 x 2 tiles
    assert all(h % whole.zoo.align == 0 and w % whole.zoo.align == 0 for h, w in tiled_calls)
    diff = float(np.abs(a - b).max())
    print(f"{name}: tiled vs untiled max |diff| = {diff:.3g}")
    assert diff <= ROUNDING


def test_hard_tile_seams_differ_so_the_overlap_is_what_makes_tiles_exact(zoo_weights):
    rgb = frame(50, 70)
    a = zoo(zoo_weights("compact"))[0].process(rgb, 1)
    b = zoo(zoo_weights("compact"), tile=32, zoo_overlap=0)[0].process(rgb, 1)
    c = zoo(zoo_weights("compact"), tile=32, zoo_overlap=4)[0].process(rgb, 1)  # guard 1 px < radius 4
    assert float(np.abs(a - b).max()) > 100 * ROUNDING and float(np.abs(a - c).max()) > 100 * ROUNDING


def test_descriptions(zoo_weights):
    compact, _ = zoo(zoo_weights("compact"))
    info = compact.zoo.describe()
    assert (info["architecture"], info["scale"], info["input_channels"], info["output_channels"]) == ("Compact", 2, 3, 3)
    assert info["parameters"] == sum(p.numel() for p in compact.zoo.descriptor.model.parameters()) == 2292
    swin, _ = zoo(zoo_weights("swinir"))
    info = swin.zoo.describe()
    assert info["architecture"] == "SwinIR" and info["tiling"] == "discouraged"
    assert info["size_requirements"]["tile_multiple"] == 4 and info["supports_fp16"] is False
    plus = zoo(zoo_weights("rrdb_x2plus"))[0].zoo.describe()
    assert plus["scale"] == 2 and plus["size_requirements"]["multiple_of"] == 4 and "unshuffle" in plus["tags"]


def test_pth_state_dict_loads_like_safetensors(zoo_weights):
    rgb = frame(24, 30)
    a = zoo(zoo_weights("compact"))[0].process(rgb, 1)
    op, _ = zoo(zoo_weights("compact", "pth"))
    assert op.zoo.arch == "Compact" and op.zoo.path.endswith(".pth")
    np.testing.assert_array_equal(op.process(rgb, 1), a)


def test_odd_frame_is_padded_to_the_model_multiple_and_cropped_back(zoo_weights):
    op, calls = zoo(zoo_weights("rrdb_x2plus"))
    assert op.process(frame(21, 35), 1).shape == (42, 70, 3)
    assert calls == [(24, 36)]  # reflect-padded to multiples of 4, cropped after the model


def test_models_are_cached_per_file_and_reload_when_it_changes(zoo_weights, tmp_path):
    from bake_node.zoo import load_cached
    path = zoo_weights("compact")
    assert load_cached(path) is load_cached(path)
    copy = tmp_path / "copy.safetensors"
    copy.write_bytes(open(path, "rb").read())
    first = load_cached(str(copy))
    copy.write_bytes(open(zoo_weights("rrdb"), "rb").read())
    assert load_cached(str(copy)) is not first and load_cached(str(copy)).arch == "ESRGAN"


def test_range_policy_preserve_adds_the_resampled_excess(zoo_weights):
    rgb = frame(20, 24) * 3.0 - 1.0  # scene-linear-like: values in [-1, 2]
    clip, _ = zoo(zoo_weights("compact"), zoo_range_policy="clip")
    keep, _ = zoo(zoo_weights("compact"))
    a, b = clip.process(rgb.copy(), 1), keep.process(rgb.copy(), 1)
    assert a.min() >= 0.0 and a.max() <= 1.0
    excess = torch.from_numpy(rgb - np.clip(rgb, 0, 1)).permute(2, 0, 1)[None]
    expected = F.interpolate(excess, scale_factor=2, mode="bilinear", align_corners=False)[0].permute(1, 2, 0)
    np.testing.assert_allclose(b - a, expected.numpy(), atol=1e-6)
    assert b.max() > 1.5 and b.min() < -0.5


def test_alpha_follows_the_frame(zoo_weights):
    alpha = np.linspace(0, 1, 20 * 24, dtype=np.float32).reshape(20, 24)
    op, _ = zoo(zoo_weights("compact"))
    resized = op.process_alpha(alpha, 1)
    assert resized.shape == (40, 48) and resized.min() >= 0.0 and resized.max() <= 1.0
    assert abs(float(resized.mean()) - float(alpha.mean())) < 0.01
    modelled, _ = zoo(zoo_weights("compact"), zoo_alpha="model")
    assert modelled.process_alpha(alpha, 1).shape == (40, 48)


def test_bf16_is_opt_in_and_part_of_the_fingerprint(zoo_weights):
    rgb = frame(16, 16)
    fp32, _ = zoo(zoo_weights("compact"))
    bf16, _ = zoo(zoo_weights("compact"), zoo_precision="bf16")
    assert fp32.fingerprint() != bf16.fingerprint()
    assert 0 < float(np.abs(fp32.process(rgb, 1) - bf16.process(rgb, 1)).max()) < 0.05
    np.testing.assert_array_equal(fp32.process(rgb, 1), zoo(zoo_weights("compact"))[0].process(rgb, 1))


def test_fp16_refused_where_the_architecture_does_not_support_it(zoo_weights):
    from bake_node.errors import SettingsError
    with pytest.raises(SettingsError, match="SwinIR does not support fp16"):
        zoo(zoo_weights("swinir"), zoo_precision="fp16")


# Face models take exactly 512 x 512 (GFPGAN's style code, CodeFormer's 16 x 16 token grid), so
# "untiled" and "tiled" are both one 512 px pass for a small frame, and --tile is ignored; frames
# larger than 512 px are covered by blended 512 px tiles (test_fixed_size_tiles_... below).
# Each forward pass costs ~8 s on 2 CPU cores: GFPGAN runs twice, CodeFormer once.
def face_model(zoo_weights, name, params):
    op, calls = zoo(zoo_weights(name))
    info = op.zoo.describe()
    assert info["scale"] == 1 and info["size_requirements"]["fixed"] == 512 and info["parameters"] == params
    assert "no face detection" in info["tiling_hint"] and "FaceSR" == info["purpose"]
    return op, calls


def test_gfpgan_runs_on_one_512_tile_and_is_deterministic(zoo_weights):
    rgb = frame(40, 56)
    whole, whole_calls = face_model(zoo_weights, "gfpgan", 86_444_252)
    tiled, tiled_calls = zoo(zoo_weights("gfpgan"), tile=256)  # ignored: face models take 512 px tiles
    a, b = whole.process(rgb, 1), tiled.process(rgb, 1)
    assert a.shape == rgb.shape and float(a.std()) > 1e-3
    assert whole_calls == tiled_calls == [(40, 56)]  # padded to 512 x 512 inside, cropped back
    # Bit-identical twice although the test model injects noise (weight 0.5): the stored noise
    # maps are used, not spandrel's default of fresh random noise per call.
    np.testing.assert_array_equal(a, b)


def test_codeformer_runs_on_one_512_tile(zoo_weights):
    rgb = frame(40, 56)
    op, calls = face_model(zoo_weights, "codeformer", 67_812_675)
    assert op.zoo.describe()["licence"].startswith("S-Lab")
    out = op.process(rgb, 1)
    assert out.shape == rgb.shape and float(out.std()) > 1e-3 and calls == [(40, 56)]


def test_fixed_size_tiles_cover_a_larger_frame_and_blend_to_the_same_values():
    image = torch.rand(1, 3, 40, 600)
    seen = []

    def fn(tile):  # stands in for a 512 px face model: a pointwise change, so blending is exact
        seen.append(tuple(tile.shape[2:]))
        return tile * 2.0

    out = run_blended(fn, image, tile=0, overlap=32, scale=1, device=torch.device("cpu"), fixed=512)
    assert seen == [(40, 512), (40, 512)]
    torch.testing.assert_close(out, image * 2.0, rtol=0, atol=1e-6)


def test_tile_starts_end_on_the_frame_edge():
    assert tile_starts(100, 128, 16) == [0]
    assert tile_starts(300, 128, 32) == [0, 96, 172]


def test_out_of_memory_halves_the_tile_on_multiples_down_to_a_floor():
    tried = []

    def attempt(size):
        tried.append(size)
        if size > 200:
            raise torch.OutOfMemoryError("simulated")
        return size

    assert halving_on_oom(attempt, 0, 1000, torch.device("cuda"), floor=64, multiple_of=8) == 120
    assert tried == [1000, 496, 248, 120]
    with pytest.raises(DeviceError, match="out of memory"):
        halving_on_oom(attempt, 512, 512, torch.device("cuda"), floor=512)
    with pytest.raises(DeviceError):  # the CPU has no smaller-tile retry
        halving_on_oom(attempt, 512, 512, torch.device("cpu"))
