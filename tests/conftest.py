"""Shared fixtures: small checkpoints built in the test run (no shipped model needed)."""
import pytest
import torch

from bake_node.checkpoint import CheckpointInfo, save_checkpoint
from bake_node.models.bakenet import BakeNet, BakeNetConfig

TINY = BakeNetConfig(dim=8, depth=10)  # 30 px receptive radius, fast on 2 cores


def make_checkpoint(path, config=TINY, seed=0, preset="tiny-test"):
    torch.manual_seed(seed)
    model = BakeNet(config)
    with torch.no_grad():  # a visible, non-trivial colour change, so tests can see the model act
        model.head_out.weight.mul_(4.0)
    save_checkpoint(path, model, CheckpointInfo(preset=preset, config=config, training={"note": "random test weights"}))
    return path


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    return str(make_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"))


@pytest.fixture(autouse=True)
def restore_torch_threads():
    """Trainer(threads=1) sets a process-wide torch setting; CPU convolution results depend on the
    thread count in the last bits, so a later in-process render must not inherit it."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)
