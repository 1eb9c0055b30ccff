"""A scale-changing operator (zoo, 2x) in ComfyUI: an IMAGE batch of the new size, alpha included."""
import numpy as np
import torch

from bake_node.node import get_operator
from tests.zoo.conftest import compact, save


def test_zoo_node_returns_a_2x_batch_with_alpha_and_a_review_image(pack, comfy, tmp_path):
    torch.manual_seed(0)
    weights = save(compact(), tmp_path / "compact_2x.safetensors")
    image = torch.rand(2, 12, 16, 4, generator=torch.Generator().manual_seed(1))
    knobs = {"weights": weights, "device": "cpu", "tile": 0}
    with torch.inference_mode():  # as ComfyUI runs nodes
        out, review = pack.NODE_CLASS_MAPPINGS["BakeSeqZoo"]().run(image=image, first_frame=1, **knobs)
    assert out.shape == (2, 24, 32, 4) and out.dtype == torch.float32 and review.shape == (2, 24, 32, 3)
    op = get_operator("zoo")
    op.prepare(knobs)
    for i in range(2):
        np.testing.assert_array_equal(out[i, ..., :3].numpy(), op.process(image[i, ..., :3].numpy().copy(), 1 + i))
        np.testing.assert_array_equal(out[i, ..., 3].numpy(), op.process_alpha(image[i, ..., 3].numpy().copy(), 1 + i))
    assert torch.equal(review[:, :, :15], image[:, :, :, :3].repeat_interleave(2, 1).repeat_interleave(2, 2)[:, :, :15])
