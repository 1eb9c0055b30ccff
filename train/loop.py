"""The training loop (spec/bakenet.md section 6): AdamW, warm-up + exponential decay, gradient
clipping, EMA, accumulation, NaN-step skip, checkpoints every epoch, exact resume.

The loop is the same for every model; what differs (network, batches, loss, validation, sample
grids, checkpoint format) lives in a task (train/tasks.py: ``BakeTask``, ``train.restore.GlobalTask``,
``train.colorize.ColorizeTask``).

Run folder:
    checkpoints/last/model.safetensors   EMA weights in the render path's format (bake-seq render)
    checkpoints/last/state.pt            everything needed to continue (tensors and plain containers)
    checkpoints/best/model.safetensors   EMA weights with the best validation CIEDE2000
    log.jsonl, loss.png, samples/step_XXXXXXX.png

An epoch is one pass over the training images: ceil(images / (batch x accum)) optimiser steps.
All randomness (crops, flips, degradations) comes from generators seeded by (seed, step), so
resuming from a checkpoint draws exactly what the uninterrupted run would have drawn; the state
file also carries torch's global RNG states.
"""
from __future__ import annotations

import copy
import io
import json
import math
import os
import sys
import time
from pathlib import Path

import torch

from bake_node.checkpoint import CheckpointInfo
from bake_node.engine import pick_device
from bake_node.errors import CheckpointError, SettingsError
from bake_seq.sequences.errors import OutputError
from bake_seq.sequences.safe_write import check_target, write_file

from .config import TrainConfig
from .data import load_folder, with_smaller_copies
from .report import plot_losses, save_grid
from .tasks import make_task

STATE_FORMAT = 1
# Settings a resumed run may change without breaking "continues exactly".
RESUMABLE_CHANGES = {"init", "epochs", "steps", "val_every", "sample_every", "plot_every", "threads", "device", "run",
                     "max_minutes"}


class Trainer:
    def __init__(self, cfg: TrainConfig, resume: str = "auto", echo=None):
        """resume: 'auto' (continue if a checkpoint exists), 'force' or 'restart'."""
        self.cfg = cfg
        self.echo = echo or (lambda text: print(text, file=sys.stderr))
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.device = pick_device(cfg.device)
        torch.backends.cudnn.benchmark = True  # as the reference: fastest kernels for fixed crops
        if not cfg.data:
            raise SettingsError(None, "no training images given", "pass --data DIR (or --bundled-data DIR)")
        if not (cfg.steps or cfg.epochs):
            raise SettingsError(None, "the run has no length", "pass --steps N or --epochs N")
        self.task = make_task(cfg)
        self.images = with_smaller_copies(load_folder(cfg.data, cfg.ocio, cfg.input_colorspace, cfg.bit_depth,
                                                      cfg.downscale), cfg.extra_downscale)
        val_images = (load_folder(cfg.val_data, cfg.ocio, cfg.input_colorspace, cfg.bit_depth, cfg.downscale)
                      if cfg.val_data else [])
        self.val_cases = self.task.set_validation(val_images)
        self.steps_per_epoch = math.ceil(len(self.images) / (cfg.batch * cfg.accum))
        self.total_steps = min(n for n in (cfg.steps, cfg.epochs and cfg.epochs * self.steps_per_epoch) if n)
        self.loss_fn = self.task.loss_fn()

        torch.manual_seed(cfg.seed)
        self.model = self.task.build_model()
        if cfg.init:
            self.start_from(cfg.init)
        self.model = self.model.to(self.device)
        self.ema = copy.deepcopy(self.model).requires_grad_(False)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.step, self.best, self.wall_s, self.skipped = 0, math.inf, 0.0, 0
        self.out_of_time = False  # set by fit() when --max-minutes ran out

        self.run = Path(cfg.run)
        self.last = self.run / "checkpoints" / "last"
        self.log_path = self.run / "log.jsonl"
        state = self.last / "state.pt"
        check_target(self.log_path, overwrite=True, what="training run", fix="choose another --run folder")
        if resume == "force" and not state.exists():
            raise CheckpointError(str(state), "no checkpoint to resume from", "drop --resume to start a new run")
        if resume != "restart" and state.exists():
            self.load_state(state)
            self.echo(f"resuming {self.run} at step {self.step} (epoch {self.epoch})")
        else:  # a new run: nothing from an earlier one may pass for this one's
            self.run.mkdir(parents=True, exist_ok=True)
            self.log_path.unlink(missing_ok=True)  # the first log line starts the new one
            (self.run / "checkpoints" / "best" / "model.safetensors").unlink(missing_ok=True)
        self.trim_log()

    def start_from(self, path: str) -> None:
        """Weights from another run's checkpoint (fine-tuning on new data): the same model kind,
        architecture and config, or one line saying which differs. The schedule, EMA and
        optimiser start fresh; a resumed run ignores this (its own state wins)."""
        from bake_node.checkpoint import file_sha256, read_checkpoint

        name = "colorize" if self.cfg.model == "colorize" else "bakenet"
        model, _, config = read_checkpoint(path, name, f"pass a {name} checkpoint to --init")
        ours = self.cfg.model_config.to_dict()
        # A calibrated colorize file's chroma scales its output, not its weights: this run's applies.
        differ = sorted(k for k, v in config.to_dict().items() if ours.get(k) != v and k != "chroma")
        if differ:
            raise SettingsError(path, f"--init model differs from this run's in {', '.join(differ)}",
                                "pass a checkpoint of the same preset, or drop --init")
        self.model.load_state_dict(model.state_dict())
        self.init_sha256 = file_sha256(path)

    # -- schedule -------------------------------------------------------------------------
    @property
    def epoch(self) -> int:
        return self.step // self.steps_per_epoch

    def lr_at(self, step: int) -> float:
        cfg = self.cfg
        warmup = cfg.warmup_epochs * self.steps_per_epoch
        if step < warmup:
            return cfg.lr * (cfg.warmup_start + (1.0 - cfg.warmup_start) * step / warmup)
        return cfg.lr * cfg.lr_decay ** (step - warmup)

    def ema_decay_at(self, step: int) -> float:
        # Constant 0.999 from step 0 would keep e^(-t/1000) of the random init in the EMA (37 %
        # after 1000 steps); the ramp changes nothing after ~9000 steps.
        if not self.cfg.ema_warmup:
            return self.cfg.ema_decay
        return min(self.cfg.ema_decay, (1.0 + step) / (10.0 + step))

    # -- one optimiser step ------------------------------------------------------------------
    def batch(self, micro: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(input, target) for micro-batch number ``micro`` (counted over the run)."""
        return self.task.batch(self.images, micro, self.device)

    def train_step(self) -> dict:
        cfg = self.cfg
        self.model.train()
        total, finite = 0.0, True
        for k in range(cfg.accum):
            inp, target = self.batch(self.step * cfg.accum + k)
            loss = self.loss_fn(self.model(inp), target) / cfg.accum
            if not torch.isfinite(loss):
                finite = False
                break
            loss.backward()
            total += float(loss.detach())
        grad_norm = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)) if finite else math.nan
        lr = self.lr_at(self.step)
        if finite and math.isfinite(grad_norm):
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            self.optimizer.step()
            self.update_ema()
        else:  # a NaN/Inf loss or gradient skips the step instead of poisoning the weights
            self.skipped += 1
            total = None
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        return {"step": self.step, "epoch": self.epoch, "loss": total, "lr": lr,
                "grad_norm": grad_norm if math.isfinite(grad_norm) else None}

    @torch.no_grad()
    def update_ema(self) -> None:
        decay = self.ema_decay_at(self.step)
        for ema, raw in zip(self.ema.parameters(), self.model.parameters()):
            ema.lerp_(raw, 1.0 - decay)

    # -- the run -------------------------------------------------------------------------------
    def fit(self) -> dict:
        cfg = self.cfg
        bar = self.progress_bar()
        started = last_line = run_start = time.perf_counter()
        first_step = self.step
        self.out_of_time = False
        try:
            while self.step < self.total_steps and not self.out_of_time:
                record = self.train_step()
                self.out_of_time = bool(cfg.max_minutes) and time.perf_counter() - run_start >= cfg.max_minutes * 60
                self.log(record)
                if bar is not None:
                    loss = record["loss"] if record["loss"] is not None else math.nan
                    bar.set_postfix(loss=f"{loss:.3g}", lr=f"{record['lr']:.2e}", refresh=False)
                    bar.update(1)
                elif time.perf_counter() - last_line > 30 or self.step == self.total_steps or self.out_of_time:
                    last_line = time.perf_counter()
                    rate = (last_line - run_start) / (self.step - first_step)
                    self.echo(self.status_line(record, rate))
                end = self.step == self.total_steps or self.out_of_time
                if cfg.sample_every and (self.step % cfg.sample_every == 0 or end):
                    self.save_samples()
                if self.val_cases and ((cfg.val_every and self.step % cfg.val_every == 0) or end):
                    self.validate()
                if self.step % self.steps_per_epoch == 0 or end:
                    self.wall_s += time.perf_counter() - started
                    started = time.perf_counter()
                    self.save()
                if (cfg.plot_every and self.step % cfg.plot_every == 0) or end:
                    plot_losses(self.log_path, self.run / "loss.png")
        finally:
            if bar is not None:
                bar.close()
        return self.summary()

    def progress_bar(self):
        if not sys.stderr.isatty():
            return None  # farm/CI logs get a plain line every 30 s instead
        from tqdm import tqdm
        return tqdm(total=self.total_steps, initial=self.step, unit="step", file=sys.stderr, dynamic_ncols=True)

    def status_line(self, record: dict, seconds_per_step: float) -> str:
        eta = seconds_per_step * (self.total_steps - self.step)
        loss = record["loss"] if record["loss"] is not None else math.nan
        return (f"step {self.step}/{self.total_steps} epoch {self.epoch} loss {loss:.4g} lr {record['lr']:.2e} "
                f"({seconds_per_step:.2f} s/step, ETA {eta / 60:.1f} min)")

    def validate(self) -> float:
        """Score the EMA weights on the validation cases (lower is better); keep the best."""
        self.ema.eval()
        record, value, text = self.task.validate(self.ema, self.device)
        self.log({"step": self.step, **record})
        if value < self.best:
            self.best = value
            self.task.save(self.run / "checkpoints" / "best" / "model.safetensors", self.ema,
                           self.info({"best_val_de2000": value}))
        self.echo(f"step {self.step}: validation {text} (best {getattr(self.task, 'score_name', 'CIEDE2000')} "
                  f"{self.best:.3f})")
        return value

    def save_samples(self) -> None:
        """Before/after grid: validation cases if there are any, else a training batch."""
        self.ema.eval()
        rows, labels = self.task.sample_rows(self.ema, self.device, None if self.val_cases else self.batch(0))
        columns = [f"{c} (step {self.step})" if c.startswith("model") else c for c in self.task.columns]
        folder = self.run / "samples"
        folder.mkdir(parents=True, exist_ok=True)
        save_grid(rows, columns, folder / f"step_{self.step:07d}.png", labels)

    # -- logs, checkpoints, resume -------------------------------------------------------------
    def log(self, record: dict) -> None:
        """One line appended (a log grows by a line per step: rewriting it whole each time would
        be quadratic); a failed append is the same one-line write error as every other file."""
        try:
            with open(self.log_path, "a") as fh:
                fh.write(json.dumps(record) + "\n")
        except OSError as exc:
            if self.log_path.exists() and self.log_path.stat().st_size == 0:
                self.log_path.unlink()  # the append that failed created it: leave nothing behind
            raise OutputError(str(self.log_path), f"cannot write the training log ({exc.strerror or exc})",
                              "free disk space or choose another --run folder") from None

    def trim_log(self) -> None:
        """Drop log lines written after the checkpoint we resumed from (they will be redone)."""
        if self.log_path.exists():
            keep = [line for line in self.log_path.read_text().splitlines()
                    if line.strip() and json.loads(line).get("step", 0) <= self.step]
            write_file(self.log_path, "".join(line + "\n" for line in keep), overwrite=True, what="training log")

    def info(self, extra: dict | None = None) -> CheckpointInfo:
        cfg = self.cfg
        training = {
            "steps": self.step, "epochs": self.epoch, "steps_per_epoch": self.steps_per_epoch,
            "images": [im.name for im in self.images], "data": cfg.data, "val_data": cfg.val_data,
            "loss": cfg.loss, "crop": cfg.crop, "batch": cfg.batch, "accum": cfg.accum, "lr": cfg.lr,
            "seed": cfg.seed, "device": str(self.device), "torch_threads": torch.get_num_threads(),
            "wall_s": round(self.wall_s, 1), "skipped_steps": self.skipped, "ema": True,
            "best_val_de2000": None if math.isinf(self.best) else self.best,
        }
        if cfg.init:
            training["init"] = {"file": os.path.basename(cfg.init), "sha256": self.init_sha256}
        training.update(extra or {})
        return self.task.info(training)

    def save(self) -> None:
        # The model file first: resume reads only state.pt, so a crash between the two writes
        # leaves a consistent run (the state is at most one epoch older than the model file).
        self.task.save(self.last / "model.safetensors", self.ema, self.info())
        state = {
            "format": STATE_FORMAT, "step": self.step, "best": self.best, "wall_s": self.wall_s,
            "skipped": self.skipped, "config": self.cfg.to_dict(),
            "model": self.model.state_dict(), "ema": self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "rng_cpu": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        }
        buffer = io.BytesIO()  # in memory, then the safe writer: libtorch onto a full disk is no one-line error
        torch.save(state, buffer)
        write_file(self.last / "state.pt", buffer.getvalue(), overwrite=True, what="training state",
                   fix="free disk space or choose another --run folder")

    def load_state(self, path: Path) -> None:
        try:
            # Tensors and plain containers only: a state file can never run code.
            state = torch.load(path, map_location=self.device, weights_only=True)
        except Exception as exc:
            raise CheckpointError(str(path), f"unreadable training state ({str(exc).splitlines()[0][:120]})",
                                  "pass --restart to start again") from None
        needed = ("config", "model", "ema", "optimizer", "step", "best", "wall_s", "skipped", "rng_cpu", "rng_cuda")
        missing = [k for k in needed if not isinstance(state, dict) or k not in state]
        if missing or not isinstance(state["config"], dict):
            raise CheckpointError(str(path), f"is not a bake-seq training state (missing {', '.join(missing) or 'config'})",
                                  "pass --restart to start again, or another --run folder")
        saved = state["config"]
        changed = sorted(k for k, v in self.cfg.to_dict().items() if saved.get(k) != v and k not in RESUMABLE_CHANGES)
        cfg = self.cfg
        if ((saved.get("model", "bakenet"), saved.get("preset"), saved.get("dim"), saved.get("depth"))
                != (cfg.model, cfg.preset, cfg.dim, cfg.depth)):
            raise SettingsError(str(path), f"this run trains another model ({saved.get('model', 'bakenet')} "
                                f"{saved.get('preset')!r}), not {cfg.model} {cfg.preset_name!r}",
                                "use the same --model/--preset, another --run folder, or --restart")
        if changed:
            self.echo(f"note: resuming with changed settings ({', '.join(changed)}); "
                      "the run no longer matches an uninterrupted one")
        try:
            self.model.load_state_dict(state["model"])
            self.ema.load_state_dict(state["ema"])
            self.optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError, TypeError) as exc:  # shapes or keys of another model
            raise CheckpointError(str(path), f"training state does not fit this model ({str(exc).splitlines()[0][:120]})",
                                  "pass --restart to start again, or another --run folder") from None
        self.step, self.best, self.wall_s, self.skipped = state["step"], state["best"], state["wall_s"], state["skipped"]
        torch.set_rng_state(state["rng_cpu"].cpu())
        if state["rng_cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([s.cpu() for s in state["rng_cuda"]])

    def summary(self) -> dict:
        return {"run": str(self.run), "steps": self.step, "epochs": self.epoch,
                "model": str(self.last / "model.safetensors"),
                "best": str(self.run / "checkpoints" / "best" / "model.safetensors") if self.val_cases else None,
                "best_val_de2000": None if math.isinf(self.best) else self.best,
                "wall_s": round(self.wall_s, 1), "skipped_steps": self.skipped,
                "stopped_by_time": self.out_of_time}
