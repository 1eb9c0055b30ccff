"""Fit a shot's correction to keyframe pairs (`bake-seq learn`), each stage only as far as
held-out pixels justify it.

Every key is cut into 4 x 4 regions; 4 of them, one per row and column, are held out: no stage
sees their key pixels, and each stage is kept only if it lowers the mean CIEDE2000 on them by at
least ``KEEP`` (3 %) against the stage before. Stages, per key:

    grade   the global BakeNet's 61-number grade, from zero (= identity), on sampled pixels
    lut     a residual 3D lattice over the plate's OklabP colour, from zero (= the grade),
            with a smoothness penalty (first differences) chosen among SMOOTHING on held-out pixels
    local   (``local=True``) the per-pixel BakeNet `cpu` preset fine-tuned from the shipped
            weights, its output layer zeroed (so it starts as the identity), on crops of all keys

With two keys or more, each key gets its own colour correction (frames between keys blend the
two nearest by frame distance) and every key is also scored against one grade fitted to the
*other* keys: the held-out-key error says how far one correction for the whole shot would be off.

Colour stages run on the CPU in float32 with fixed seeds and a fixed number of steps, so the
same keys and seed give the same file; the time limit can only cut the local stage short (the
record says so).
"""
from __future__ import annotations

import math
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from bake_node.models.bakenet_global import apply_grade
from bake_node.models.shot import ShotConfig, ShotCorrection, lattice_lookup
from bake_node.palette import oklabp_to_srgb, srgb_to_oklabp

from .ciede2000 import delta_e_srgb
from .keyframes import KeyPair

KEEP = 0.97  # a stage must bring held-out CIEDE2000 to at most this fraction of the stage before
SMOOTHING = (0.3, 3.0)  # lattice smoothness weights tried (held-out pixels choose)
FIT_PIXELS = 1 << 16  # sampled per key for the colour stages
HELD_OUT_PIXELS = 1 << 15
DISAGREE = 2.0  # one grade for all keys is "not enough" beyond this x the keys' own held-out error


@dataclass
class Session:
    """What every learning run shares: its seed, its time limit, its device, its messages."""

    seed: int = 0
    max_minutes: float = 0.0  # 0 = no limit
    device: str = "cpu"
    say: Callable[[str], None] = lambda text: None
    progress: Callable[[str, int, int], None] = lambda stage, done, total: None
    started: float = field(default_factory=time.monotonic)

    def out_of_time(self) -> bool:
        return self.max_minutes > 0 and time.monotonic() - self.started > 60.0 * self.max_minutes


@dataclass
class LearnOptions(Session):
    grade_steps: int = 300
    lut_size: int = 17
    lut_steps: int = 300
    local: bool = False
    local_steps: int = 300
    local_crop: int = 128


# -- pixels -----------------------------------------------------------------------------------
def held_out_mask(height: int, width: int, cells: int = 4) -> np.ndarray:
    """H x W bool: True on the held-out regions (cell (i, j) of a 4 x 4 grid with (i + j) % 4 == 0)."""
    rows = np.minimum(np.arange(height) * cells // height, cells - 1)
    cols = np.minimum(np.arange(width) * cells // width, cells - 1)
    return ((rows[:, None] + cols[None, :]) % cells) == 0


def to_lab(rgb: np.ndarray) -> torch.Tensor:
    """(..., 3) working-space sRGB -> (..., 3) OklabP float32 (clamped to the model's domain)."""
    return srgb_to_oklabp(torch.from_numpy(np.clip(rgb, 0.0, 1.0)).double(), dim=-1).float()


def to_srgb(lab: torch.Tensor) -> torch.Tensor:
    return oklabp_to_srgb(lab.double(), dim=-1).float()


@dataclass
class Samples:
    """One key's sampled pixels as (1, 3, 1, N) OklabP columns (what the model's maths takes)."""

    plate: torch.Tensor
    key: torch.Tensor
    plate_ho: torch.Tensor
    key_ho: torch.Tensor


def sample_pixels(pair: KeyPair, seed: int) -> Samples:
    held = held_out_mask(*pair.plate.shape[:2]).ravel()
    gen = np.random.default_rng([seed, pair.frame & 0xFFFFFFFF, 1])
    fit_idx, ho_idx = np.flatnonzero(~held), np.flatnonzero(held)
    fit_idx = np.sort(gen.choice(fit_idx, min(FIT_PIXELS, len(fit_idx)), replace=False))
    ho_idx = np.sort(gen.choice(ho_idx, min(HELD_OUT_PIXELS, len(ho_idx)), replace=False))
    plate, key = pair.plate.reshape(-1, 3), pair.key.reshape(-1, 3)

    def column(values):
        return to_lab(values).T.reshape(1, 3, 1, -1).contiguous()
    return Samples(column(plate[fit_idx]), column(key[fit_idx]), column(plate[ho_idx]), column(key[ho_idx]))


def distance(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean OklabP distance (a robust L1-like loss: an artist's paint-out is not a colour)."""
    return torch.sqrt((pred - target).square().sum(1) + 1e-8).mean()


def mean_de(lab_a: torch.Tensor, lab_b: torch.Tensor) -> float:
    """Mean CIEDE2000 between two (1, 3, 1, N) OklabP columns."""
    a = to_srgb(lab_a[0, :, 0].T)
    b = to_srgb(lab_b[0, :, 0].T)
    return float(delta_e_srgb(a, b).mean())


# -- colour stages ----------------------------------------------------------------------------
def _adam(params, steps: int, lr: float, loss_fn, stage: str, options: LearnOptions) -> int:
    """Full-batch Adam with a cosine decay; a fixed number of steps (determinism)."""
    opt = torch.optim.Adam(params, lr=lr)
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = lr * 0.5 * (1.0 + math.cos(math.pi * step / steps))
        opt.zero_grad(set_to_none=True)
        loss = loss_fn()
        loss.backward()
        opt.step()
        if step % 25 == 24 or step == steps - 1:
            options.progress(stage, step + 1, steps)
    return steps


def fit_grade(model: ShotCorrection, row: int, samples: list[Samples], options: LearnOptions,
              stage: str = "grade") -> None:
    """One grade fitted to all of ``samples`` (one key's, or several keys' at once), written to
    row ``row`` of model.grades."""
    grade = torch.zeros(1, model.config.grade_parameters, requires_grad=True)
    plate = torch.cat([s.plate for s in samples], dim=3)
    key = torch.cat([s.key for s in samples], dim=3)

    def loss():
        pred = apply_grade(model.config, grade, plate)
        return distance(pred, key) + 1e-4 * grade.square().mean()
    _adam([grade], options.grade_steps, 0.05, loss, stage, options)
    with torch.no_grad():
        model.grades[row] = grade[0].detach()


def lattice_smoothness(lattice: torch.Tensor) -> torch.Tensor:
    """Mean squared first difference along the three colour axes of a (3, S, S, S) lattice."""
    return sum(torch.diff(lattice, dim=d).square().mean() for d in (1, 2, 3))


def fit_lattice(model: ShotCorrection, key: int, sample: Samples, smooth: float, options: LearnOptions) -> torch.Tensor:
    """Key ``key``'s residual lattice on top of its fitted grade (which stays as it is)."""
    size = model.config.lut
    lattice = torch.zeros(3, size, size, size, requires_grad=True)
    with torch.no_grad():
        base = model.colour(key, sample.plate)  # the grade's output: fixed during this stage

    def loss():
        pred = base + lattice_lookup(lattice, sample.plate)
        return distance(pred, sample.key) + smooth * lattice_smoothness(lattice) + 1e-3 * lattice.square().mean()
    _adam([lattice], options.lut_steps, 0.01, loss, f"lut {smooth:g}", options)
    return lattice.detach()


def held_out_de(model: ShotCorrection, key: int, sample: Samples) -> float:
    with torch.no_grad():
        return mean_de(model.colour(key, sample.plate_ho), sample.key_ho)


def learn_colour(pairs: list[KeyPair], options: LearnOptions) -> tuple[ShotCorrection, dict]:
    """Stages grade and lut for every key; returns the model (no local stage) and per-key scores."""
    frames = tuple(p.frame for p in pairs)
    base_config = ShotConfig(frames=frames)
    samples = [sample_pixels(p, options.seed) for p in pairs]
    model = ShotCorrection(base_config)
    scores = []
    for k, (pair, sample) in enumerate(zip(pairs, samples)):
        options.say(f"frame {pair.frame}: fitting the grade")
        fit_grade(model, k, [sample], options, stage=f"grade {pair.frame}")
        with torch.no_grad():
            fit_de = mean_de(model.colour(k, sample.plate), sample.key)
        scores.append({"frame": pair.frame, "do_nothing_de": mean_de(sample.plate_ho, sample.key_ho),
                       "grade": {"fit_de": fit_de, "held_out_de": held_out_de(model, k, sample)}})
    if options.lut_size:
        model = with_lattice(model, options.lut_size)
        for k, (pair, sample) in enumerate(zip(pairs, samples)):
            grade_de = scores[k]["grade"]["held_out_de"]
            tried = []
            for smooth in SMOOTHING:
                options.say(f"frame {pair.frame}: fitting the colour lattice (smoothness {smooth:g})")
                lattice = fit_lattice(model, k, sample, smooth, options)
                with torch.no_grad():
                    model.lattice[k] = lattice
                    tried.append((held_out_de(model, k, sample), smooth, lattice,
                                  mean_de(model.colour(k, sample.plate), sample.key)))
                    model.lattice[k] = 0.0
            ho, smooth, lattice, fit_de = min(tried, key=lambda t: (t[0], -t[1]))
            kept = ho <= KEEP * grade_de
            if kept:
                with torch.no_grad():
                    model.lattice[k] = lattice
            scores[k]["lut"] = {"fit_de": fit_de, "held_out_de": ho, "smoothness": smooth, "kept": kept,
                                "tried": {f"{s:g}": t for t, s, *_ in tried}}
        if not any(s["lut"]["kept"] for s in scores):
            model = with_lattice(model, 0)
    if len(pairs) > 1:
        held_out_keys(model, pairs, samples, scores, options)
    return model, {"keys": scores}


def with_lattice(model: ShotCorrection, size: int) -> ShotCorrection:
    """The same grades in a model with (or, size 0, without) a residual lattice of ``size``."""
    from dataclasses import replace

    new = ShotCorrection(replace(model.config, lut=size))
    with torch.no_grad():
        new.grades.copy_(model.grades)
        if size and model.lattice is not None and model.lattice.shape == new.lattice.shape:
            new.lattice.copy_(model.lattice)
    return new


def held_out_keys(model: ShotCorrection, pairs, samples, scores, options: LearnOptions) -> None:
    """Score each key against one grade fitted to the other keys (a held-out key), and say when
    one correction cannot hold every key (light that changes through the shot)."""
    for k, pair in enumerate(pairs):
        others = [s for j, s in enumerate(samples) if j != k]
        probe = ShotCorrection(ShotConfig(frames=(0,)))
        fit_grade(probe, 0, others, options, stage=f"held-out key {pair.frame}")
        with torch.no_grad():
            scores[k]["held_out_key_de"] = mean_de(probe.colour(0, samples[k].plate_ho), samples[k].key_ho)
    own = [min(s["grade"]["held_out_de"], s.get("lut", {}).get("held_out_de", math.inf)) for s in scores]
    worst = max(range(len(scores)), key=lambda k: scores[k]["held_out_key_de"] / max(own[k], 1e-6))
    if scores[worst]["held_out_key_de"] > DISAGREE * max(own[worst], 0.5):
        options.say(f"warning: the keys disagree more than one correction can hold: a grade fitted to the other "
                    f"keys leaves frame {pairs[worst].frame} at CIEDE2000 {scores[worst]['held_out_key_de']:.2f} "
                    f"(its own fit: {own[worst]:.2f}, doing nothing: {scores[worst]['do_nothing_de']:.2f}); "
                    f"frames between keys blend the two nearest keys' corrections by frame distance")


# -- local stage ------------------------------------------------------------------------------
LOCAL_MARGIN = 8  # crop border pixels left out of the loss (they lack context)
LOCAL_LR = 5e-4


def shipped_local() -> torch.nn.Module:
    """The shipped per-pixel `cpu` preset with its output layer zeroed: the same features, and
    an identity to start from (the blind restorer's own correction is not this shot's)."""
    from bake_node.checkpoint import load_checkpoint
    from bake_node.models.bakenet import PRESETS, BakeNet
    from bake_node.operators.bake import CPU_CHECKPOINT

    net = load_checkpoint(CPU_CHECKPOINT).model if CPU_CHECKPOINT.exists() else BakeNet(PRESETS["cpu"])
    net.requires_grad_(True)
    with torch.no_grad():
        net.head_out.weight.zero_()
        net.head_out.bias.zero_()
    return net


def frame_lab(rgb: np.ndarray) -> torch.Tensor:
    """H x W x 3 working-space sRGB -> (1, 3, H, W) OklabP."""
    return to_lab(rgb).permute(2, 0, 1)[None].contiguous()


def held_out_windows(mask: np.ndarray, size: int, halo: int) -> list[tuple[slice, slice, slice, slice]]:
    """Per held-out region, a window of at most ``size`` px at its centre plus ``halo`` of context:
    (window rows, window cols, scored rows inside the window, scored cols inside the window)."""
    h, w = mask.shape
    windows = []
    rows, cols = np.nonzero(mask)
    for label in np.unique((rows * 4 // h) * 4 + cols * 4 // w):
        cell = ((rows * 4 // h) * 4 + cols * 4 // w) == label
        r0, r1, c0, c1 = rows[cell].min(), rows[cell].max() + 1, cols[cell].min(), cols[cell].max() + 1
        cy, cx = (r0 + r1) // 2, (c0 + c1) // 2
        sr0, sr1 = max(r0, cy - size // 2), min(r1, cy + size // 2)
        sc0, sc1 = max(c0, cx - size // 2), min(c1, cx + size // 2)
        wr0, wr1, wc0, wc1 = max(0, sr0 - halo), min(h, sr1 + halo), max(0, sc0 - halo), min(w, sc1 + halo)
        windows.append((slice(wr0, wr1), slice(wc0, wc1), slice(sr0 - wr0, sr1 - wr0), slice(sc0 - wc0, sc1 - wc0)))
    return windows


def clipped_step(opt: torch.optim.Optimizer, net: torch.nn.Module, loss: torch.Tensor) -> None:
    """One optimiser step of a network fine-tuned on keys, its gradient norm clipped to 1."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
    opt.step()


def learn_local(model: ShotCorrection, pairs: list[KeyPair], scores: list[dict],
                options: LearnOptions) -> tuple[ShotCorrection, dict]:
    """Fine-tune the per-pixel BakeNet on crops of every key (after the colour stages); kept only
    if it lowers held-out CIEDE2000 by KEEP. Returns the model with or without it, and the stage's record."""
    from dataclasses import replace

    from bake_node.engine import pick_device

    device = pick_device(options.device)
    net = shipped_local().to(device)
    halo = net.config.receptive_radius
    inputs, targets, masks = [], [], []
    with torch.no_grad():
        for k, pair in enumerate(pairs):
            lab = frame_lab(pair.plate)
            # the colour stages' output, 64 rows at a time: a whole 2K frame through the grade's
            # maths at once made ~5 GB of temporaries (measured 6.5 GB peak)
            inputs.append(torch.cat([model.colour(k, lab[:, :, top:top + 64]) for top in range(0, lab.shape[2], 64)], 2))
            targets.append(frame_lab(pair.key))
            masks.append(torch.from_numpy(~held_out_mask(*pair.plate.shape[:2])).float()[None, None])
    crop = options.local_crop
    gen = torch.Generator().manual_seed(options.seed * 7919 + 17)
    opt = torch.optim.Adam(net.parameters(), lr=LOCAL_LR)
    steps_done = 0
    for step in range(options.local_steps):
        if options.out_of_time():
            options.say(f"--max-minutes reached: the local stage stops after {step} of {options.local_steps} steps")
            break
        batch_in, batch_target, batch_mask = [], [], []
        for _ in range(2):
            k = int(torch.randint(len(pairs), (1,), generator=gen))
            _, _, h, w = inputs[k].shape
            ch, cw = min(crop, h), min(crop, w)
            y = int(torch.randint(h - ch + 1, (1,), generator=gen))
            x = int(torch.randint(w - cw + 1, (1,), generator=gen))
            cut = (..., slice(y, y + ch), slice(x, x + cw))
            batch_in.append(inputs[k][cut])
            batch_target.append(targets[k][cut])
            batch_mask.append(masks[k][cut])
        if len({t.shape for t in batch_in}) > 1:  # keys of different sizes: one crop per step
            batch_in, batch_target, batch_mask = batch_in[:1], batch_target[:1], batch_mask[:1]
        x_in, target = torch.cat(batch_in).to(device), torch.cat(batch_target).to(device)
        weight = torch.cat(batch_mask).to(device)
        m = LOCAL_MARGIN if min(x_in.shape[2:]) > 4 * LOCAL_MARGIN else 0
        inner = (..., slice(m, x_in.shape[2] - m), slice(m, x_in.shape[3] - m))
        pred = net(x_in)
        err = torch.sqrt((pred - target).square().sum(1, keepdim=True) + 1e-8)[inner]
        clipped_step(opt, net, (err * weight[inner]).sum() / weight[inner].sum().clamp_min(1.0))
        steps_done = step + 1
        if step % 10 == 9 or step == options.local_steps - 1:
            options.progress("local", step + 1, options.local_steps)
    net.eval().requires_grad_(False)
    before_all, after_all = [], []
    with torch.no_grad():
        for k, pair in enumerate(pairs):
            before, after = [], []
            for wr, wc, sr, sc in held_out_windows(held_out_mask(*pair.plate.shape[:2]), 256, halo):
                x_in = inputs[k][..., wr, wc]
                out = net(x_in.to(device)).cpu()
                target = targets[k][..., wr, wc][..., sr, sc]
                before.append(_frame_de(x_in[..., sr, sc], target))
                after.append(_frame_de(out[..., sr, sc], target))
            b, a = float(torch.cat(before).mean()), float(torch.cat(after).mean())
            scores[k]["local"] = {"held_out_de_before": b, "held_out_de": a}
            before_all.append(b)
            after_all.append(a)
    kept = float(np.mean(after_all)) <= KEEP * float(np.mean(before_all))
    for s in scores:
        s["local"]["kept"] = kept
    stage = {"steps": steps_done, "steps_asked": options.local_steps, "crop": crop, "lr": LOCAL_LR,
             "kept": kept, "preset": "cpu", "device": str(device)}
    if not kept:
        options.say(f"the local stage did not lower held-out error by {100 * (1 - KEEP):.0f}% "
                    f"({np.mean(before_all):.3f} -> {np.mean(after_all):.3f}): not kept")
        return model, stage
    new = ShotCorrection(replace(model.config, local_dim=net.config.dim, local_depth=net.config.depth))
    with torch.no_grad():
        new.grades.copy_(model.grades)
        if model.lattice is not None:
            new.lattice.copy_(model.lattice)
        new.local.load_state_dict(net.cpu().state_dict())
    return new, stage


def _frame_de(lab_a: torch.Tensor, lab_b: torch.Tensor) -> torch.Tensor:
    """Per-pixel CIEDE2000 of two (1, 3, H, W) OklabP images, flattened."""
    a = oklabp_to_srgb(lab_a.double())[0].permute(1, 2, 0).float()
    b = oklabp_to_srgb(lab_b.double())[0].permute(1, 2, 0).float()
    return delta_e_srgb(a, b).flatten()


@contextmanager
def one_thread():
    """torch splits reductions (the loss's mean, the gradients' sums) by thread count, so two
    machines with different core counts would fit slightly different numbers; one thread makes
    the colour stages' result the same on every node (measured: 1 and 2 threads differed)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@contextmanager
def flush_denormals():
    """Tiny values (a gamma of a near-black, a cube root near zero) are denormal floats, which
    made the grade's fit 4x slower on the CPU (47 s against 11 s, same result: measured)."""
    torch.set_flush_denormal(True)  # torch's default is off (and it cannot be read back)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


def learn_shot(pairs: list[KeyPair], options: LearnOptions) -> tuple[ShotCorrection, dict]:
    """Every stage in order; the model and the record of what was fitted and kept."""
    with flush_denormals():
        return _learn_shot(pairs, options)


def _learn_shot(pairs: list[KeyPair], options: LearnOptions) -> tuple[ShotCorrection, dict]:
    with one_thread():
        model, found = learn_colour(pairs, options)
    stages = {"grade": {"steps": options.grade_steps, "kept": True, "lr": 0.05}}
    if options.lut_size:
        stages["lut"] = {"size": options.lut_size, "steps": options.lut_steps, "smoothing_tried": list(SMOOTHING),
                         "kept": model.config.lut > 0,
                         "kept_for_frames": [s["frame"] for s in found["keys"] if s["lut"]["kept"]]}
    if options.local:
        model, stages["local"] = learn_local(model, pairs, found["keys"], options)
    found["stages"] = stages
    found["keep_rule"] = (f"a stage is kept when it brings the held-out regions' mean CIEDE2000 to at most "
                          f"{KEEP:g} x the stage before")
    found["held_out"] = "4 of 4x4 regions per key (one per row and column); no stage sees their key pixels"
    if len(pairs) > 1:
        found["blend"] = ("each key has its own correction; frames between two keys blend the two keys' results "
                          "linearly by frame distance, frames outside the keys take the nearest key's")
    return model, found


def save_shot(path: str, model: ShotCorrection, record: dict, **target) -> None:
    """The learned correction as a bake-seq checkpoint (model "bakenet", architecture "shot"): every
    host, `render --checkpoint`, `submit` and `grade` take it like any model."""
    from bake_node.checkpoint import CheckpointInfo, save_checkpoint

    save_checkpoint(path, model, CheckpointInfo(preset="shot", config=model.config, weights="fitted", training=record), **target)
