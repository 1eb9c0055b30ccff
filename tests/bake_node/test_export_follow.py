"""`export --frame N --follow-analysis FILE` bakes frame N's measured colour change into the file,
as `render --follow auto` applies it (issue 31 item 2: Nuke takes exported files)."""
from __future__ import annotations

import numpy as np
import torch

from bake_node.temporal import Change, apply
from tests.train.test_learn_keys import FIRST, FRAMES, bake, make_shot, png


def test_an_exported_frame_applies_the_plates_change_like_render(tmp_path):
    def drift(i, view):  # white balance drifting warm -> cool over the shot
        t = i / (FRAMES - 1)
        hwc = view.permute(1, 2, 0).contiguous().numpy()
        return torch.from_numpy(apply(Change.of([0.3 - 0.6 * t, 0.0, -0.3 + 0.6 * t], [1.0] * 3), hwc, "clip")
                                ).permute(2, 0, 1)

    plate, clean, _ = make_shot(tmp_path, grading=drift)
    learned, record = tmp_path / "shot.safetensors", tmp_path / "shot.temporal.json"
    bake("learn", plate, "--key", f"{FIRST}={tmp_path / 'clean' / f'{FIRST}.png'}", "-o", learned, "-q")
    bake("info", plate, "--temporal", "--write", record)
    bake("render", plate, "--checkpoint", learned, "-o", tmp_path / "out" / "####.png", "-q")
    last = FIRST + FRAMES - 1
    out = tmp_path / "last.pt"
    result = bake("export", "--format", "torchscript", "--checkpoint", learned, "--frame", str(last),
                  "--follow-analysis", record, "-o", out)
    assert "wrote" in result.stdout
    module = torch.jit.load(str(out), map_location="cpu")
    frame = torch.from_numpy(png(tmp_path / "plate" / f"{last}.png")).permute(2, 0, 1)[None].float()
    exported = module(frame)[0].permute(1, 2, 0).numpy()
    rendered = png(tmp_path / "out" / f"{last}.png")
    # The same maths in another code path (TorchScript, exp(s ln 2) for exp2), then 16-bit PNG:
    # measured 0.5 code of 65535 (the PNG rounding); a file without the change: 9228 codes off.
    assert np.abs(exported - rendered).max() * 65535 <= 2
    plain = tmp_path / "plain.pt"
    bake("export", "--format", "torchscript", "--checkpoint", learned, "--frame", str(last), "-o", plain)
    without = torch.jit.load(str(plain), map_location="cpu")(frame)[0].permute(1, 2, 0).numpy()
    assert np.abs(without - rendered).max() * 65535 > 1000
