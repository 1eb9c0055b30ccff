"""A ComfyUI batch is a shot: the Bake node estimates one correction from the whole batch."""
import numpy as np
import OpenImageIO as oiio
import torch

from tests.bake_node.test_shot_grade import FRAMES, bake, gckpt, panning_plate  # noqa: F401
from tests.test_render_cli import read


def codes_written(path):
    """A 16-bit frame's code values, as integers."""
    image = oiio.ImageInput.open(str(path))
    codes = image.read_image(0, 0, 0, 3, oiio.UINT16)
    image.close()
    return codes


def test_comfyui_batch_is_a_shot(pack, comfy, tmp_path, gckpt):  # noqa: F811
    plate = panning_plate(tmp_path / "plate")
    bake("render", plate, "-o", tmp_path / "shot", "--checkpoint", gckpt, "-q")
    # The plate comes in through Load Plate Sequence, which reads it with the CLI's own code
    # (load_frame); the Bake node then runs the operator's analyse and process as the CLI does.
    # So the node's frames are the CLI's to the last bit before the 16-bit write: rounded as
    # the writer rounds them, they are the very codes the CLI wrote, on any CPU.
    images, _, first, _, _ = pack.NODE_CLASS_MAPPINGS["BakeSeqLoadPlateSequence"]().load(plate)
    node = pack.NODE_CLASS_MAPPINGS["BakeSeqBake"]
    with torch.inference_mode():
        out, _ = node().run(image=images, first_frame=first, checkpoint=gckpt, device="cpu", tile=0,
                            range_policy="preserve", temporal="auto")
    for i, n in enumerate(FRAMES):
        written = np.rint(np.clip(out[i].numpy().astype(np.float64), 0.0, 1.0) * 65535.0)
        assert np.array_equal(written, codes_written(tmp_path / "shot" / f"p.{n}.png"))
    # the same pixels decoded by another reader (OIIO's own uint16 -> float, which rounds 512
    # of the 65,536 codes one float32 step apart) are another input: the estimate may move in
    # its last bits, by a CPU-dependent amount (7.8e-6 measured on one machine)
    decoded = torch.from_numpy(np.stack([read(tmp_path / "plate" / f"p.{n}.png")[0] for n in FRAMES]))
    assert not torch.equal(decoded, images) and (decoded - images).abs().max() <= 6e-8
    assert comfy.bars == [[len(FRAMES), len(FRAMES)]] * 2  # loading, then baking
    # the batch's frames in another order are the same shot: frame mode differs from shot mode
    with torch.inference_mode():
        single, _ = node().run(image=images, first_frame=first, checkpoint=gckpt, device="cpu", tile=0,
                               range_policy="preserve", temporal="frame")
    assert not torch.equal(single, out)
