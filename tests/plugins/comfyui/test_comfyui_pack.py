"""The ComfyUI pack, loaded from its folder as ComfyUI loads it, run on real tensors and files."""
import os
import sys
import types

import numpy as np
import OpenImageIO as oiio
import pytest
import torch

from bake_node.node import ENGINE_KNOBS, get_operator
from bake_seq.ocio.config import WORKING_SPACE, resolve_config
from bake_seq.ocio.convert import convert
from bake_seq.sequences.errors import PlateError
from bake_seq.sequences.plate import read_plate, write_plate
from tests.plugins.host_stand_ins import Interrupted

FRAMES = (1001, 1002, 1003)


def bake_inputs(checkpoint, **changes):
    return {"checkpoint": checkpoint, "device": "cpu", "tile": 0, "range_policy": "preserve", **changes}


def random_images(n=3, h=24, w=32, channels=3, seed=0):
    return torch.rand(n, h, w, channels, generator=torch.Generator().manual_seed(seed))


def exr_plate(folder, frames=FRAMES, h=20, w=28):
    """ACEScg-tagged RGBA half EXRs, written out of frame order, each frame a different level."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    written = {}
    for n in reversed(frames):
        rgb = rng.random((h, w, 3), dtype=np.float32) * (0.2 + 0.3 * (n - frames[0]))
        alpha = rng.random((h, w, 1), dtype=np.float32)
        write_plate(str(folder / f"plate.{n}.exr"), np.concatenate([rgb, alpha], axis=2),
                    channel_names=["R", "G", "B", "A"], metadata={}, colorspace="ACEScg", frame=n)
        written[n] = read_plate(str(folder / f"plate.{n}.exr"), None).pixels  # as stored (half)
    return str(folder / "plate.####.exr"), written


def test_pack_follows_comfyui_conventions(pack):
    nodes, names = pack.NODE_CLASS_MAPPINGS, pack.NODE_DISPLAY_NAME_MAPPINGS
    assert {"BakeSeqBake", "BakeSeqLoadPlateSequence", "BakeSeqSavePlateSequence", "BakeSeqBeforeAfter"} <= set(nodes)
    assert names["BakeSeqBake"] == "Bake Colour Restore"
    assert set(names) == set(nodes)
    for cls in nodes.values():
        inputs = cls.INPUT_TYPES()
        assert set(inputs) <= {"required", "optional", "hidden"} and inputs["required"]
        assert isinstance(cls.RETURN_TYPES, tuple) and len(cls.RETURN_NAMES) == len(cls.RETURN_TYPES)
        assert callable(getattr(cls, cls.FUNCTION)) and cls.CATEGORY == "bake-seq"
    bake = nodes["BakeSeqBake"].INPUT_TYPES()["required"]
    assert list(bake)[0] == "image" and bake["image"] == ("IMAGE",)
    tile = next(k for k in ENGINE_KNOBS if k.name == "tile")
    assert bake["tile"] == ("INT", {"default": tile.default, "min": 0, "max": 2**31 - 1, "step": 1,
                                    "tooltip": tile.help})
    assert bake["device"][0] == ["auto", "cpu", "cuda"] and bake["device"][1]["default"] == "auto"
    assert bake["range_policy"][0] == ["preserve", "clip"]
    assert bake["checkpoint"] == ("STRING", {"default": "", "tooltip": bake["checkpoint"][1]["tooltip"]})
    assert nodes["BakeSeqBake"].RETURN_TYPES == ("IMAGE", "IMAGE")
    assert nodes["BakeSeqLoadPlateSequence"].RETURN_TYPES == ("IMAGE", "MASK", "INT", "STRING", "STRING")
    assert nodes["BakeSeqSavePlateSequence"].OUTPUT_NODE is True


def test_bake_node_gives_the_operators_frames_with_progress_and_a_cached_model(pack, comfy, tiny_checkpoint):
    node_cls = pack.NODE_CLASS_MAPPINGS["BakeSeqBake"]
    image = random_images() * 1.2 - 0.1  # a few values outside [0, 1]: the range policy keeps them
    with torch.inference_mode():  # as ComfyUI runs nodes
        out, review = node_cls().run(image=image, first_frame=1001, **bake_inputs(tiny_checkpoint))
    op = get_operator("bake")
    op.prepare(bake_inputs(tiny_checkpoint))
    for i in range(3):
        assert np.array_equal(out[i].numpy(), op.process(image[i].numpy(), 1001 + i))
    assert out.dtype == torch.float32 and out.shape == image.shape
    assert comfy.bars == [[3, 3]] and comfy.checks == 3
    assert torch.equal(review[:, :, :15], image[:, :, :15]) and torch.equal(review[:, :, 17:], out[:, :, 17:])
    assert torch.all(review[:, :, 16] == 1.0)
    model = node_cls._prepared[1]
    node_cls().run(image=image[:1], **bake_inputs(tiny_checkpoint))
    assert node_cls._prepared[1] is model  # the loaded model is reused between executions
    node_cls().run(image=image[:1], **bake_inputs(tiny_checkpoint, range_policy="clip"))
    assert node_cls._prepared[1] is not model


def test_bake_node_stops_when_comfyui_interrupts(pack, comfy, tiny_checkpoint):
    comfy.interrupt_after = 1
    with pytest.raises(Interrupted):
        pack.NODE_CLASS_MAPPINGS["BakeSeqBake"]().run(image=random_images(), **bake_inputs(tiny_checkpoint))
    assert comfy.bars == [[3, 1]]  # one frame done, stopped before the second


def test_bake_node_passes_alpha_through(pack, tiny_checkpoint):
    image = random_images(n=1, channels=4)
    out, _ = pack.NODE_CLASS_MAPPINGS["BakeSeqBake"]().run(image=image, **bake_inputs(tiny_checkpoint))
    assert out.shape == image.shape and torch.equal(out[..., 3], image[..., 3])


def test_load_plate_sequence_gives_srgb_frames_in_frame_order_and_mask(pack, comfy, tmp_path):
    pattern, stored = exr_plate(tmp_path / "plate")
    image, mask, first, space, _ = pack.NODE_CLASS_MAPPINGS["BakeSeqLoadPlateSequence"]().load(pattern)
    config = resolve_config(None)[0]
    assert (first, space, image.shape, mask.shape) == (1001, "ACEScg", (3, 20, 28, 3), (3, 20, 28))
    assert image.dtype == torch.float32 and mask.dtype == torch.float32
    for i, n in enumerate(FRAMES):
        expected = convert(stored[n][:, :, :3], config, "ACEScg", WORKING_SPACE)
        np.testing.assert_array_equal(image[i].numpy(), expected)
        np.testing.assert_array_equal(mask[i].numpy(), 1.0 - stored[n][:, :, 3])
    assert comfy.bars == [[3, 3]]
    image, _, first, _, _ = pack.NODE_CLASS_MAPPINGS["BakeSeqLoadPlateSequence"]().load(pattern, frames="1002-1003")
    assert first == 1002 and image.shape[0] == 2


def test_load_plate_sequence_png16_without_alpha_and_its_errors(pack, tmp_path):
    folder = tmp_path / "scan"
    folder.mkdir()
    codes = np.arange(12 * 16 * 3, dtype=np.uint16).reshape(12, 16, 3) * 40
    for n in (1, 2):
        out = oiio.ImageOutput.create(str(folder / f"{n:04d}.png"))
        out.open(str(folder / f"{n:04d}.png"), oiio.ImageSpec(16, 12, 3, oiio.UINT16))
        out.write_image(codes)
        out.close()
    load = pack.NODE_CLASS_MAPPINGS["BakeSeqLoadPlateSequence"]().load
    image, mask, first, space, _ = load(str(folder / "####.png"))
    assert space == WORKING_SPACE and first == 1
    np.testing.assert_allclose(image[0].numpy(), codes / 65535.0, atol=1e-7)  # sRGB already: no conversion
    assert torch.equal(mask, torch.zeros(2, 64, 64))  # ComfyUI's LoadImage placeholder: no alpha, no mask
    # wired into Save Plate Sequence as in the documented graph, an RGB plate stays RGB (issue 15)
    save = pack.NODE_CLASS_MAPPINGS["BakeSeqSavePlateSequence"]().save
    save(image, str(tmp_path / "rgb" / "####.png"), first, space, mask=mask)
    assert read_plate(str(tmp_path / "rgb" / "0001.png"), None).pixels.shape[2] == 3
    with pytest.raises(PlateError, match="missing frames 3"):
        load(str(folder / "####.png"), frames="1-3")


def test_save_plate_sequence_round_trips_a_plate(pack, comfy, tmp_path):
    pattern, stored = exr_plate(tmp_path / "plate")
    image, mask, first, space, _ = pack.NODE_CLASS_MAPPINGS["BakeSeqLoadPlateSequence"]().load(pattern)
    comfy.bars.clear()
    out_pattern = str(tmp_path / "out" / "shot.####.exr")
    result = pack.NODE_CLASS_MAPPINGS["BakeSeqSavePlateSequence"]().save(
        image, out_pattern, first, space, mask=mask)
    assert result["result"] == (out_pattern,) and comfy.bars == [[3, 3]]
    assert sorted(os.listdir(tmp_path / "out")) == [f"shot.{n}.exr" for n in FRAMES]  # no temp files left
    for n in FRAMES:
        written = read_plate(out_pattern.replace("####", str(n)), None)
        np.testing.assert_allclose(written.pixels[:, :, :3], stored[n][:, :, :3], rtol=2e-3, atol=1e-4)
        np.testing.assert_array_equal(written.pixels[:, :, 3], stored[n][:, :, 3])  # alpha exact
        assert written.header.metadata["Frame"] == n
        assert resolve_config(None)[0].getColorSpace(written.header.colorspace_tag).getName() == "ACEScg"


def test_save_plate_sequence_png16_codes(pack, tmp_path):
    image = random_images(n=2, h=8, w=10)
    pack.NODE_CLASS_MAPPINGS["BakeSeqSavePlateSequence"]().save(
        image, str(tmp_path / "f.%04d.png"), 7, WORKING_SPACE)
    spec_in = oiio.ImageInput.open(str(tmp_path / "f.0008.png"))
    codes = spec_in.read_image(0, 0, 0, 3, oiio.UINT16)
    spec_in.close()
    np.testing.assert_array_equal(codes, np.rint(image[1].numpy().astype(np.float64) * 65535))


def test_relative_paths_use_comfyuis_folders_and_changes_rerun(pack, tmp_path, monkeypatch):
    pattern, _ = exr_plate(tmp_path / "input" / "shot")
    folder_paths = types.SimpleNamespace(get_input_directory=lambda: str(tmp_path / "input"),
                                         get_output_directory=lambda: str(tmp_path / "output"))
    monkeypatch.setitem(sys.modules, "folder_paths", folder_paths)
    load_cls = pack.NODE_CLASS_MAPPINGS["BakeSeqLoadPlateSequence"]
    image, *_ = load_cls().load("shot/plate.####.exr")
    pack.NODE_CLASS_MAPPINGS["BakeSeqSavePlateSequence"]().save(image, "out/x.####.exr", 1, WORKING_SPACE)
    assert os.path.exists(tmp_path / "output" / "out" / "x.0003.exr")
    before = load_cls.IS_CHANGED("shot/plate.####.exr")
    os.utime(pattern.replace("####", "1002"), ns=(1, 1))
    assert load_cls.IS_CHANGED("shot/plate.####.exr") != before
    assert load_cls.IS_CHANGED("nowhere/####.exr") != load_cls.IS_CHANGED("nowhere/####.exr")  # NaN: always re-run


def test_save_plate_sequence_never_replaces_a_loaded_plate_nor_writes_outside_the_output_folder(
        pack, tmp_path, monkeypatch):
    from bake_node.errors import UnsafeOutputError

    pattern, _ = exr_plate(tmp_path / "output" / "plates")  # a plate inside the output folder
    folder_paths = types.SimpleNamespace(get_input_directory=lambda: str(tmp_path / "input"),
                                         get_output_directory=lambda: str(tmp_path / "output"))
    monkeypatch.setitem(sys.modules, "folder_paths", folder_paths)
    image, *_ = pack.NODE_CLASS_MAPPINGS["BakeSeqLoadPlateSequence"]().load(pattern)
    before = {p.name: p.read_bytes() for p in (tmp_path / "output" / "plates").iterdir()}
    save = pack.NODE_CLASS_MAPPINGS["BakeSeqSavePlateSequence"]().save
    for target in (pattern, "plates/plate.####.exr", "elsewhere/../plates/plate.####.exr"):
        with pytest.raises(UnsafeOutputError, match="would replace an input"):
            save(image * 0.5, target, FRAMES[0], WORKING_SPACE)
    assert {p.name: p.read_bytes() for p in (tmp_path / "output" / "plates").iterdir()} == before
    for target in (str(tmp_path / "anywhere" / "x.####.exr"), "../escape/x.####.exr"):
        with pytest.raises(UnsafeOutputError, match="inside ComfyUI's output folder"):
            save(image, target, FRAMES[0], WORKING_SPACE)
    assert not (tmp_path / "anywhere").exists() and not (tmp_path / "escape").exists()


def test_before_after_node(pack):
    before, after = random_images(n=1, seed=1), random_images(n=1, seed=2)
    compare = pack.NODE_CLASS_MAPPINGS["BakeSeqBeforeAfter"]().compare
    (side,) = compare(before, after, "side_by_side")
    assert torch.equal(side, torch.cat([before, after], dim=2))
    (split,) = compare(before, after, "split")
    assert torch.equal(split[:, :, :16], before[:, :, :16]) and torch.equal(split[:, :, 17:], after[:, :, 17:])


def test_the_host_keeps_its_own_torch_settings(pack, comfy, tiny_checkpoint):
    """Issue 15: bake-seq's determinism settings hold for its own work, then ComfyUI's come back."""
    from bake_node.engine import deterministic

    backends = torch.backends
    host = (True, False, True, True)  # ComfyUI-style speed settings
    (backends.cudnn.benchmark, backends.cudnn.deterministic, backends.cuda.matmul.allow_tf32,
     backends.cudnn.allow_tf32) = host
    try:
        with deterministic():
            assert (backends.cudnn.benchmark, backends.cudnn.deterministic, backends.cuda.matmul.allow_tf32,
                    backends.cudnn.allow_tf32) == (False, True, False, False)
        pack.NODE_CLASS_MAPPINGS["BakeSeqBake"]().run(image=random_images(), **bake_inputs(tiny_checkpoint))
        assert (backends.cudnn.benchmark, backends.cudnn.deterministic, backends.cuda.matmul.allow_tf32,
                backends.cudnn.allow_tf32) == host
    finally:
        (backends.cudnn.benchmark, backends.cudnn.deterministic, backends.cuda.matmul.allow_tf32,
         backends.cudnn.allow_tf32) = (False, True, False, False)


def test_node_errors_name_the_node_inputs(pack, tmp_path, tiny_checkpoint):
    """Issue 15: not `unknown --input-colorspace 'X'` but the input the user set on the node."""
    from bake_seq.ocio.errors import ColourError

    pattern, _ = exr_plate(tmp_path / "plate")
    with pytest.raises(ColourError, match="Load Plate Sequence: unknown colour space in the colorspace input 'Nope'"):
        pack.NODE_CLASS_MAPPINGS["BakeSeqLoadPlateSequence"]().load(pattern, colorspace="Nope")
    with pytest.raises(Exception, match="the checkpoint input") as failed:
        pack.NODE_CLASS_MAPPINGS["BakeSeqBake"]().run(image=random_images(), **bake_inputs(str(tmp_path / "no.safetensors")))
    assert "--checkpoint" not in str(failed.value)


def test_metadata_of_the_plate_reaches_saved_frames(pack, tmp_path):
    """Issue 15: Load -> Save keeps timecode and the plate's tags, as `bake-seq render` does."""
    from tests.test_render_cli import dpx10

    plate = dpx10(tmp_path / "dpx", range(1001, 1003))  # DPX with SMPTE timecodes per frame
    image, mask, first, space, source = pack.NODE_CLASS_MAPPINGS["BakeSeqLoadPlateSequence"]().load(
        plate, colorspace="ADX10")
    assert source == plate
    save = pack.NODE_CLASS_MAPPINGS["BakeSeqSavePlateSequence"]().save
    save(image, str(tmp_path / "out" / "####.dpx"), first, space, mask=mask, plate=source)
    for n in (1001, 1002):
        want = read_plate(plate.replace("####", str(n)), None).header.metadata["smpte:TimeCode"]
        got = read_plate(str(tmp_path / "out" / f"{n}.dpx"), None).header.metadata["smpte:TimeCode"]
        assert list(got) == list(want)
    save(image, str(tmp_path / "bare" / "####.dpx"), first, space)  # without the plate: no timecode
    assert "smpte:TimeCode" not in read_plate(str(tmp_path / "bare" / "1001.dpx"), None).header.metadata

