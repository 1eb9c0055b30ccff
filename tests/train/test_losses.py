"""HeoLoss and the 96-channel Hyper-Baked projection (spec/bakenet.md section 4)."""
import math

import torch

from bake_node.palette import MACBETH_OKLABP
from bake_seq.train.losses import HEO_EPS, heo_loss, hyper_loss, hyper_projection


def heo(d: float) -> float:
    return float(heo_loss(torch.tensor([d], dtype=torch.float64), torch.tensor([0.0], dtype=torch.float64)))


def test_heo_is_continuous_at_the_knee():
    assert math.isclose(HEO_EPS, 1 / (math.e - 1))
    at = heo(0.001)
    assert math.isclose(at, 1e-6, rel_tol=1e-5)
    for side in (0.001 - 1e-7, 0.001 + 1e-7, -0.001 - 1e-7):
        assert math.isclose(heo(side), at, rel_tol=1e-3)


def test_heo_branches():
    assert math.isclose(heo(0.01), 1e-4, rel_tol=1e-5)  # quadratic: (1000 d)^2 / 1000 / 1000 = d^2
    assert math.isclose(heo(0.0005), math.log1p(0.5 / HEO_EPS) / 1e6, rel_tol=1e-5)
    assert heo(0.0) < 1e-10


def test_heo_runs_in_float32():
    assert heo_loss(torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)).dtype == torch.float32


def test_projection_shape_and_channels():
    x = torch.randn(2, 3, 5, 7) * 0.3
    p = hyper_projection(x)
    assert p.shape == (2, 96, 5, 7)
    assert torch.equal(p[:, :24], x.repeat(1, 8, 1, 1))
    patch = torch.tensor(MACBETH_OKLABP[4]).view(1, 3, 1, 1)
    at_patch = hyper_projection(patch)
    for k in range(3):  # each sigma's RBF for patch 5 is 1 at the patch itself
        assert math.isclose(float(at_patch[0, 24 + 24 * k + 4]), 1.0, rel_tol=1e-6)


def test_hyper_loss_has_no_gradient_through_the_target():
    pred = (torch.randn(1, 3, 4, 4) * 0.3).requires_grad_()
    target = (torch.randn(1, 3, 4, 4) * 0.3).requires_grad_()
    hyper_loss(pred, target).backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0
    assert target.grad is None
