import pytest
import torch

from bake_node.models.bakenet import PRESETS, BakeNet, BakeNetConfig, NeMO, count_parameters


def test_v5_parameter_count_and_facts():
    model = BakeNet(PRESETS["v5"])
    assert count_parameters(model) == 1_625_793
    assert model.config.receptive_radius == 90
    assert model.config.kernels[:4] == (3, 3, 3, 5) and model.config.kernels[-3:] == (3, 3, 3)
    # ~1.6 M MACs per pixel: the k x k convs alone are C^2 (D/10) sum(k^2) = 900 * 3 * 570
    assert model.config.macs_per_pixel > 900 * 3 * 570
    assert 1.55e6 < model.config.macs_per_pixel < 1.65e6


def test_one_block_class_for_all_kernel_sizes():
    model = BakeNet(PRESETS["v5"])
    kinds = {type(b) for b in model.blocks}
    assert kinds == {NeMO}
    assert [b.kernel for b in model.blocks] == list(model.config.kernels)
    assert [b[0].conv.kernel_size[0] for b in model.blocks] == list(model.config.kernels)


def test_cpu_preset_is_smaller_and_runs():
    cpu = BakeNet(PRESETS["cpu"])
    assert count_parameters(cpu) < count_parameters(BakeNet(PRESETS["v5"])) / 3
    x = torch.rand(1, 3, 40, 48) * 2 - 1
    with torch.no_grad():
        y = cpu(x)
    assert y.shape == x.shape and torch.isfinite(y).all()


def test_output_is_input_plus_quarter_head():
    model = BakeNet(BakeNetConfig(dim=8, depth=10))
    with torch.no_grad():
        model.head_out.weight.zero_()
        model.head_out.bias.zero_()
        x = torch.rand(2, 3, 16, 16)
        assert torch.equal(model(x), x)


def test_bad_depth_rejected():
    with pytest.raises(ValueError):
        BakeNetConfig(depth=25)
