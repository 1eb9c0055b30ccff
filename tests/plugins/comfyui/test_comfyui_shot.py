"""A ComfyUI batch is a shot: the Bake node estimates one correction from the whole batch."""
import numpy as np
import torch

from tests.bake_node.test_shot_grade import FRAMES, bake, frames_of, gckpt, panning_plate  # noqa: F401
from tests.test_render_cli import read


def test_comfyui_batch_is_a_shot(pack, comfy, tmp_path, gckpt):  # noqa: F811
    plate = panning_plate(tmp_path / "plate")
    bake("render", plate, "-o", tmp_path / "shot", "--checkpoint", gckpt, "-q")
    images = torch.from_numpy(np.stack([read(tmp_path / "plate" / f"p.{n}.png")[0] for n in FRAMES])).float()
    node = pack.NODE_CLASS_MAPPINGS["BakeSeqBake"]
    with torch.inference_mode():
        out, _ = node().run(image=images, first_frame=1001, checkpoint=gckpt, device="cpu", tile=0,
                            range_policy="preserve", temporal="auto")
    want = frames_of(tmp_path / "shot")
    for i, n in enumerate(FRAMES):  # the CLI's frames went through a 16-bit write: half a code apart at most
        assert np.abs(out[i].numpy() - want[f"p.{n}.png"]).max() <= 0.5 / 65535 + 1e-7
    assert comfy.bars == [[len(FRAMES), len(FRAMES)]]
    # the batch's frames in another order are the same shot: frame mode differs from shot mode
    with torch.inference_mode():
        single, _ = node().run(image=images, first_frame=1001, checkpoint=gckpt, device="cpu", tile=0,
                               range_policy="preserve", temporal="frame")
    assert not torch.equal(single, out)
