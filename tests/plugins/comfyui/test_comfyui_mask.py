"""A MASK reaches operators that accept one (colorize), frame by frame, through the pack loaded
as ComfyUI loads it; operators that do not accept one get no MASK input."""
import numpy as np
import pytest
import torch

from bake_node.node import get_operator
from tests.colorize.conftest import grey_frames, make_colorize_checkpoint


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return str(make_colorize_checkpoint(tmp_path_factory.mktemp("colorize") / "tiny.safetensors"))


def inputs(checkpoint, **changes):
    return {"colorize_checkpoint": checkpoint, "mask": "", "detect_damage": True, "device": "cpu", "tile": 0,
            **changes}


def test_mask_input_only_where_the_operator_takes_one(pack):
    colorize = pack.NODE_CLASS_MAPPINGS["BakeSeqColorize"].INPUT_TYPES()
    assert colorize["optional"]["mask_input"][0] == "MASK"
    assert colorize["required"]["mask"][0] == "STRING"  # the mask-pattern knob is still a widget
    assert "mask_input" not in pack.NODE_CLASS_MAPPINGS["BakeSeqBake"].INPUT_TYPES()["optional"]


def test_mask_reaches_the_operator_per_frame(pack, comfy, checkpoint):
    node = pack.NODE_CLASS_MAPPINGS["BakeSeqColorize"]()
    frames = grey_frames(32, 40, 2)
    image = torch.from_numpy(np.stack(frames))  # RGBA: alpha must pass through
    mask = torch.zeros(2, 32, 40)
    mask[0, 4:12, 4:20] = 1.0
    mask[1, 20:28, 10:30] = 1.0
    out, review = node.run(image=image, first_frame=7, mask_input=mask, **inputs(checkpoint))
    assert out.shape == (2, 32, 40, 4) and review.shape == (2, 32, 40, 3) and comfy.bars[-1] == [2, 2]
    assert torch.equal(out[..., 3], image[..., 3])
    op = get_operator("colorize")
    op.prepare(inputs(checkpoint))
    for i in range(2):
        rgb = np.ascontiguousarray(frames[i][..., :3])
        expected = op.process(rgb, 7 + i, mask=mask[i].numpy())
        np.testing.assert_array_equal(out[i, ..., :3].numpy(), expected)
        assert not np.array_equal(expected, op.process(rgb, 7 + i))  # the mask made a difference
    one_for_all, _ = node.run(image=image, first_frame=7, mask_input=mask[:1], **inputs(checkpoint))
    np.testing.assert_array_equal(one_for_all[0].numpy(), out[0].numpy())
    # ComfyUI's conventions (issue 15): LoadImage's empty 64x64 mask means "no mask", another size
    # is resized to the image (a full-size zero mask and no mask give the same result)
    no_mask, _ = node.run(image=image, first_frame=7, **inputs(checkpoint))
    placeholder, _ = node.run(image=image, first_frame=7, mask_input=torch.zeros(1, 64, 64), **inputs(checkpoint))
    assert torch.equal(placeholder, no_mask)
    resized, _ = node.run(image=image, first_frame=7, mask_input=torch.nn.functional.interpolate(
        mask[:, None].float(), size=(8, 10), mode="nearest")[:, 0], **inputs(checkpoint))
    assert resized.shape == out.shape
    with pytest.raises(ValueError, match="mask_input: 3 masks for 2 images"):
        node.run(image=image, mask_input=torch.zeros(3, 32, 40), **inputs(checkpoint))
