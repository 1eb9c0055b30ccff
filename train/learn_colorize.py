"""Colourise a shot from colour keys (`bake-seq learn --op colorize`).

The plate is greyscale; a key is the colour version of one of its frames. The shipped ColorizeNet
(the `context` preset: 137 px receptive radius) is fine-tuned on crops of the keys, from the grey
frame's lightness to the key's a and b: within one shot, lightness and texture say which colour
a surface has far better than any prior learned from other photographs. The damage head keeps
what it knew (its logits are distilled from the shipped model on the same crops), so `render
--op colorize` still repairs damage.

Held out exactly as `learn_shot`: 4 of 4 x 4 regions per key are never trained on. The colour
strength (``chroma``, a/b multiplied) is then chosen on them: the value in CHROMA_GRID with the
lowest held-out CIEDE2000, 0 (a grey frame) included, so a fit that does not generalise ships
no colour instead of wrong colour.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

from bake_node.models.colorize import ColorizeNet, grey_lightness, model_input
from bake_node.palette import oklabp_to_srgb

from .ciede2000 import delta_e_srgb
from .keyframes import KeyPair
from .learn_shot import Session, clipped_step, flush_denormals, frame_lab, held_out_mask

CHROMA_GRID = tuple(round(0.1 * i, 1) for i in range(16))  # 0 .. 1.5
LR = 5e-4
DISTIL = 0.2  # weight of the damage head's distillation


@dataclass
class ColorizeLearnOptions(Session):
    steps: int = 400
    crop: int = 192


def shipped_colorize() -> tuple[ColorizeNet, str]:
    from bake_node.colorize_checkpoint import load_colorize
    from bake_node.operators.colorize import DEFAULT_CHECKPOINT

    loaded = load_colorize(DEFAULT_CHECKPOINT)
    return loaded.model, loaded.sha256


def learn_colorize(pairs: list[KeyPair], options: ColorizeLearnOptions) -> tuple[ColorizeNet, dict]:
    with flush_denormals():
        return _learn_colorize(pairs, options)


def _learn_colorize(pairs: list[KeyPair], options: ColorizeLearnOptions) -> tuple[ColorizeNet, dict]:
    from bake_node.engine import pick_device

    device = pick_device(options.device)
    shipped, shipped_sha = shipped_colorize()
    teacher = copy.deepcopy(shipped).to(device).eval()
    net = copy.deepcopy(shipped)
    net.config = replace(net.config, chroma=1.0)  # trained at full strength, calibrated after
    net.to(device).train().requires_grad_(True)
    multiple = net.config.multiple
    inputs, targets, masks = [], [], []
    for pair in pairs:
        grey = grey_lightness(torch.from_numpy(np.clip(pair.plate, 0, 1)).permute(2, 0, 1)[None])
        inputs.append(model_input(grey, None))
        targets.append(frame_lab(pair.key))
        masks.append(torch.from_numpy(~held_out_mask(*pair.plate.shape[:2])).float()[None, None])
    gen = torch.Generator().manual_seed(options.seed * 7919 + 29)
    opt = torch.optim.Adam(net.parameters(), lr=LR)
    steps_done = 0
    for step in range(options.steps):
        if options.out_of_time():
            options.say(f"--max-minutes reached: colourise training stops after {step} of {options.steps} steps")
            break
        k = int(torch.randint(len(pairs), (1,), generator=gen))
        _, _, h, w = inputs[k].shape
        ch = max(multiple, min(options.crop, h) // multiple * multiple)
        cw = max(multiple, min(options.crop, w) // multiple * multiple)
        cut = []
        for _ in range(2):
            y = int(torch.randint(max(1, h - ch + 1), (1,), generator=gen))
            x = int(torch.randint(max(1, w - cw + 1), (1,), generator=gen))
            cut.append((..., slice(y, y + ch), slice(x, x + cw)))
        x_in = torch.cat([inputs[k][c] for c in cut]).to(device)
        target = torch.cat([targets[k][c] for c in cut]).to(device)
        weight = torch.cat([masks[k][c] for c in cut]).to(device)
        pred = net(x_in)
        err = (pred[:, 1:3] - target[:, 1:3]).abs().sum(1, keepdim=True)
        loss = (err * weight).sum() / weight.sum().clamp_min(1.0)
        with torch.no_grad():
            damage = torch.sigmoid(teacher(x_in)[:, 3:4])
        clipped_step(opt, net, loss + DISTIL * F.binary_cross_entropy_with_logits(pred[:, 3:4], damage))
        steps_done = step + 1
        if step % 10 == 9 or step == options.steps - 1:
            options.progress("colorize", step + 1, options.steps)
    net.eval().requires_grad_(False)
    net = net.cpu()
    scores, chroma = calibrate(net, pairs, inputs, targets, options)
    net.config = replace(net.config, chroma=chroma)
    record = {"keys": scores, "chroma": chroma, "chroma_grid": list(CHROMA_GRID),
              "chroma_rule": "the grid value with the lowest mean held-out CIEDE2000 over the keys (0 = grey)",
              "stages": {"colorize": {"steps": steps_done, "steps_asked": options.steps, "crop": options.crop,
                                      "lr": LR, "distil_damage": DISTIL, "device": str(device),
                                      "from": "the shipped colorize-default (context preset)",
                                      "from_sha256": shipped_sha}},
              "held_out": "4 of 4x4 regions per key (one per row and column); training never sees them"}
    return net, record


def calibrate(net: ColorizeNet, pairs, inputs, targets, options) -> tuple[list[dict], float]:
    """Held-out CIEDE2000 per key at every colour strength of CHROMA_GRID; the best strength."""
    per_key = []
    for pair, x_in, target in zip(pairs, inputs, targets):
        held = torch.from_numpy(held_out_mask(*pair.plate.shape[:2]))
        with torch.no_grad():
            lab = net(x_in)[:, :3]
        key_rgb = oklabp_to_srgb(target.double())[0].permute(1, 2, 0)[held].float()
        row = []
        for s in CHROMA_GRID:
            scaled = torch.cat([lab[:, :1], s * lab[:, 1:3]], dim=1)
            rgb = oklabp_to_srgb(scaled.double())[0].permute(1, 2, 0)[held].float()
            row.append(float(delta_e_srgb(rgb, key_rgb).mean()))
        per_key.append(row)
    mean = np.mean(per_key, axis=0)
    best = int(np.argmin(mean))
    chroma = CHROMA_GRID[best]
    scores = [{"frame": p.frame, "grey_held_out_de": row[0], "held_out_de": row[best],
               "held_out_de_at_chroma_1": row[CHROMA_GRID.index(1.0)]} for p, row in zip(pairs, per_key)]
    options.say(f"colour strength {chroma:g} chosen on held-out regions: CIEDE2000 {mean[best]:.2f} "
                f"(grey: {mean[0]:.2f})")
    return scores, chroma


def save_learned_colorize(path: str, model: ColorizeNet, record: dict, **target) -> None:
    from bake_node.colorize_checkpoint import ColorizeInfo, save_colorize

    save_colorize(path, model, ColorizeInfo(preset="shot", config=model.config, weights="fitted", training=record), **target)
