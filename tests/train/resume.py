"""One check for every training task: a run split by a resume equals an uninterrupted one."""
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
