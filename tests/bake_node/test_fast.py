import pytest
import torch

from bake_node.models.bakenet_fast import FastBakeNet
from bake_node.models.bakenet import PRESETS, BakeNet, BakeNetConfig


@pytest.mark.parametrize("config", [PRESETS["v5"], BakeNetConfig(dim=8, depth=10)], ids=["v5", "tiny-projected-stem"])
def test_fused_inference_form_matches_the_model(config):
    torch.manual_seed(2)
    model = BakeNet(config).eval()
    with torch.no_grad():  # move every per-channel constant away from its init
        for p in model.parameters():
            if p.dim() == 4 and p.shape[-1] == 1 and p.shape[0] == 1:
                p.add_(torch.randn_like(p) * 0.5)
    x = torch.rand(2, 3, 37, 29) * 2 - 1
    with torch.inference_mode():
        want = model(x)
        got = FastBakeNet(model)(x)
    assert got.shape == want.shape and got.is_contiguous()
    assert (got - want).abs().max().item() < 1e-5
