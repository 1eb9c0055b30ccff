"""ComfyUI's Learn From Keyframes node learns what `bake-seq learn` learns from the same frames,
and the Bake node renders the plate with it."""
import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from tests.test_render_cli import read
from tests.train.test_learn_keys import FIRST, FRAMES, bake, make_shot


def test_learn_node_matches_the_cli_and_feeds_the_bake_node(pack, comfy, tmp_path):
    plate, _, _ = make_shot(tmp_path)
    key = tmp_path / "clean" / f"{FIRST}.png"
    bake("learn", plate, "--key", f"{FIRST}={key}", "-o", tmp_path / "cli.safetensors", "-q")
    load = pack.NODE_CLASS_MAPPINGS["BakeSeqLoadPlateSequence"]()
    images = load.load(plate, "", "")[0]  # the plate and a second load of the corrected frames, as a graph does
    corrected = load.load(str(tmp_path / "clean" / "####.png"), str(FIRST), "")[0]
    learn = pack.NODE_CLASS_MAPPINGS["BakeSeqLearnFromKeyframes"]()
    out = learn.learn(plate=images, corrected=corrected, key_frames=str(FIRST), first_frame=FIRST,
                      output=str(tmp_path / "node.safetensors"), op="bake")
    path = out["result"][0]
    cli, node = load_file(tmp_path / "cli.safetensors"), load_file(path)
    assert cli.keys() == node.keys() and all(torch.equal(cli[k], node[k]) for k in cli)  # same colour stages
    bake_node = pack.NODE_CLASS_MAPPINGS["BakeSeqBake"]()
    with torch.inference_mode():
        result, _ = bake_node.run(image=images, first_frame=FIRST, checkpoint=path, device="cpu", tile=0,
                                  range_policy="preserve", temporal="auto")
    bake("render", plate, "--checkpoint", tmp_path / "cli.safetensors", "-o", tmp_path / "out" / "####.png", "-q")
    for i in range(FRAMES):  # the same code per frame; the CLI's frame went through a 16-bit write
        want = read(tmp_path / "out" / f"{FIRST + i}.png")[0]
        assert np.abs(result[i].numpy() - want).max() <= 0.5 / 65535 + 1e-6


def test_learn_node_errors_name_its_inputs(pack, comfy, tmp_path):
    images = torch.rand(3, 32, 48, 3)
    learn = pack.NODE_CLASS_MAPPINGS["BakeSeqLearnFromKeyframes"]()
    with pytest.raises(ValueError, match="key_frames names 2 frames for 1 corrected"):
        learn.learn(plate=images, corrected=images[:1], key_frames="1001,1002", first_frame=1001,
                    output=str(tmp_path / "x.safetensors"), op="bake")
    with pytest.raises(Exception, match="key frame 1009 is not in the plate"):
        learn.learn(plate=images, corrected=images[:1], key_frames="1009", first_frame=1001,
                    output=str(tmp_path / "x.safetensors"), op="bake")
