"""Checks every training task shares: a run split by a resume equals an uninterrupted one, and
fitting lowers the loss on held-out batches."""
import json

import torch

from bake_seq.train.loop import Trainer


def assert_resume_continues_exactly(config, tmp_path) -> None:
    """``config(run_folder, steps)`` -> TrainConfig. Trains 3 steps in one go, and 2 + 1 with a
    resume in between: same losses at every step (including after the resume), same EMA."""
    quiet = {"echo": lambda _: None}
    whole = Trainer(config(tmp_path / "whole", 3), **quiet)
    whole.fit()
    Trainer(config(tmp_path / "split", 2), **quiet).fit()
    resumed = Trainer(config(tmp_path / "split", 3), **quiet)
    assert resumed.step == 2
    resumed.fit()

    def losses(run):
        return [r["loss"] for r in map(json.loads, (tmp_path / run / "log.jsonl").read_text().splitlines())]

    assert losses("split") == losses("whole")
    for a, b in zip(whole.ema.state_dict().values(), resumed.ema.state_dict().values()):
        assert torch.equal(a, b)


def fit_lowering_held_out_loss(trainer: Trainer, first: int, count: int, below: float = 0.9,
                               models: tuple[str, ...] = ("model",)) -> dict:
    """Fit ``trainer``; the loss of each of its ``models`` (attributes: model, ema) on batches
    ``first`` .. ``first + count - 1`` (crops and degradations the run never draws) must fall
    below ``below`` x the untrained model's. Returns the fit's summary."""
    held_out = [trainer.batch(k) for k in range(first, first + count)]

    def loss(model):
        with torch.no_grad():
            return sum(float(trainer.loss_fn(model(inp), target)) for inp, target in held_out)

    before = loss(trainer.model)
    summary = trainer.fit()
    for name in models:
        assert loss(getattr(trainer, name)) < below * before, name
    return summary

