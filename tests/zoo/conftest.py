"""Randomly initialised models of each zoo architecture, built with spandrel's own arch classes and
saved as real weight files. Hyper-parameters are as small as spandrel's detection allows (GFPGAN
and CodeFormer are fixed-size: ~350 MB / ~270 MB files, built once per session, on first use)."""
import pytest
import torch
from safetensors.torch import save_file


def compact():
    from spandrel.architectures.Compact import Compact
    return Compact(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=2, upscale=2)


def rrdb():
    from spandrel.architectures.ESRGAN import ESRGAN
    return ESRGAN(in_nc=3, out_nc=3, num_filters=8, num_blocks=1, scale=2)


def rrdb_x2plus():
    """Real-ESRGAN x2plus layout: pixel-unshuffle by 2, then a 4x RRDB (net 2x, sizes multiple of 4)."""
    from spandrel.architectures.ESRGAN import ESRGAN
    return ESRGAN(in_nc=12, out_nc=3, num_filters=8, num_blocks=1, scale=4, shuffle_factor=2)


def swinir():
    from spandrel.architectures.SwinIR import SwinIR
    return SwinIR(img_size=16, in_chans=3, embed_dim=12, depths=[2], num_heads=[2], window_size=4,
                  mlp_ratio=2.0, upscale=2, upsampler="pixelshuffledirect", resi_connection="1conv")


def gfpgan():
    from spandrel.architectures.GFPGAN import GFPGAN
    model = GFPGAN()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.startswith("stylegan_decoder.style_conv") and param.numel() == 1:
                param.fill_(0.5)  # noise-injection strength: trained GFPGANs use noise, random init has it off
    return model


def codeformer():
    from spandrel_extra_arches.architectures.CodeFormer import CodeFormer
    return CodeFormer(dim_embd=64, n_layers=1, codebook_size=16, latent_size=256, connect_list=["32"])


BUILDERS = {"compact": compact, "rrdb": rrdb, "rrdb_x2plus": rrdb_x2plus, "swinir": swinir,
            "gfpgan": gfpgan, "codeformer": codeformer}


def save(model: torch.nn.Module, path) -> str:
    state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    if str(path).endswith(".safetensors"):
        save_file(state, str(path))
    else:
        torch.save(state, str(path))  # a plain state dict: what torch.load(weights_only=True) accepts
    return str(path)


@pytest.fixture(scope="session")
def zoo_weights(tmp_path_factory):
    """name or (name, extension) -> path of a seeded random model of that architecture."""
    folder = tmp_path_factory.mktemp("zoo")
    made = {}

    def get(name, ext="safetensors"):
        if (name, ext) not in made:
            with torch.random.fork_rng():
                torch.manual_seed(0)
                model = BUILDERS[name]()
            made[name, ext] = save(model, folder / f"{name}.{ext}")
        return made[name, ext]

    return get
