"""The deflicker operator in ComfyUI: a batch is a shot (analysed once, then every frame), the same
code path as the operator used directly, so bit-identical to it."""
import numpy as np
import torch

from bake_node.node import get_operator
from bake_node.temporal import Change, apply
from bake_seq.train.flicker import pan_views
from tests.train.test_learn_keys import photo


def test_deflicker_node_removes_a_batchs_flicker_like_the_operator(pack, comfy):
    views = pan_views(photo(), 10, (96, 144))
    rng = np.random.default_rng(4)
    stops = rng.normal(0.0, 0.2, len(views))
    frames = [apply(Change.of([s] * 3, [1.0] * 3), v.permute(1, 2, 0).contiguous().numpy(), "clip")
              for s, v in zip(stops, views)]
    image = torch.from_numpy(np.stack(frames)).float()
    knobs = {"deflicker_window": 6.0, "device": "cpu", "tile": 0}
    with torch.inference_mode():  # as ComfyUI runs nodes
        out, review = pack.NODE_CLASS_MAPPINGS["BakeSeqDeflicker"]().run(image=image, first_frame=101, **knobs)
    assert out.shape == image.shape and review.shape == image.shape
    op = get_operator("deflicker")
    op.prepare(knobs)
    op.analyse(list(range(101, 111)), lambda n: frames[n - 101])
    for i in range(len(frames)):
        np.testing.assert_array_equal(out[i].numpy(), op.process(frames[i].copy(), 101 + i))
    # the mean level's frame-to-frame jumps (the pan's own change is small next to 0.2 stops):
    # measured 0.026 x the plate's; bound 0.3 x
    level = lambda batch: np.log2(np.asarray(batch).reshape(len(frames), -1).mean(1))  # noqa: E731
    before, after = np.std(np.diff(level(image.numpy()))), np.std(np.diff(level(out.numpy())))
    assert after < 0.3 * before, (before, after)
