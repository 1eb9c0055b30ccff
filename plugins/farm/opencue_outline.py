"""OpenCue: a pyoutline outline with one Shell layer per run of frames.

Each layer covers its frames in chunks; OpenCue substitutes each chunk's first frame for
#FRAME_START#, and the task counts its chunk in the layer's frames (--chunk-of, --chunk-size:
right on any Cuebot, stepped runs included), and
frames with gaps become several layers, so a task never renders a frame that was not asked for.

The outline is built by one piece of code, opencue_job.py, which bake-seq imports to launch or
serialise the job and copies unchanged to disk for a farm admin to read and re-launch. The job's
values (paths, names, commands) go beside it as JSON: no user value is ever written into Python
source, and bake-seq never executes generated code (issue 17).
"""
from __future__ import annotations

import importlib
import importlib.resources
import json
import os
import re
import shlex

import fileseq

from .task import FarmJob

FRAME_START = "#FRAME_START#"


def frame_runs(frames: list[int]) -> list[tuple[str, int]]:
    """(OpenCue frame range, step) per arithmetic run: [1,3,5,9,10] -> ("1-5x2", 2), ("9-10", 1)."""
    runs = []
    for run in fileseq.FrameSet.framesToFrameRange(frames, sort=True, compress=False).split(","):
        step = int(run.split("x")[1]) if "x" in run else 1
        runs.append((run, step))
    return runs


def job_data(job: FarmJob, show: str | None = None, shot: str | None = None,
             layer_args: dict | None = None) -> dict:
    """The values opencue_job.py builds the outline from (written as opencue_job.json)."""
    runs = frame_runs(job.frames)
    layers = []
    for index, (frames, step) in enumerate(runs, 1):
        # Only #FRAME_START# is trusted: older Cuebots fill #FRAME_END# as start + chunk - 1
        # (overrunning the last chunk, skipping frames of stepped runs), so the task gets the
        # layer's frames and the chunk size and counts its chunk itself. RQD hands the command to
        # a POSIX shell after substituting the tokens: quote every word.
        command = shlex.join([job.exe, *job.render_args(FRAME_START), "--chunk-of", frames,
                              "--chunk-size", str(job.chunk)])
        layers.append({"name": "render" if len(runs) == 1 else f"render_{index}", "range": frames,
                       "chunk": job.chunk, "command": command})
    return {"plate": job.plate, "output": job.output,  # for people reading the file; not used
            "name": re.sub(r"[^A-Za-z0-9_]+", "_", job.name).strip("_") or "bake_seq",
            "range": ",".join(frames for frames, _ in runs), "show": show, "shot": shot,
            "layer_args": {k: v for k, v in (layer_args or {}).items() if v is not None},
            "layers": layers}


def job_json(data: dict) -> str:
    # ASCII with escapes: any path (non-UTF-8 names as surrogates included) reads back exactly.
    return json.dumps(data, indent=4, ensure_ascii=True) + "\n"


def job_script() -> str:
    """The standalone script: opencue_job.py exactly as shipped, with no value of this job in it."""
    return importlib.resources.files(__package__).joinpath("opencue_job.py").read_text(encoding="utf-8")


def load_job_module():
    """opencue_job.py as a module (build_outline, job_spec, launch).
    Raises ImportError when pyoutline is not installed."""
    return importlib.import_module(".opencue_job", __package__)


def cuebot_configured(cuebot: str | None) -> bool:
    return bool(cuebot or os.environ.get("CUEBOT_HOSTS", "").strip())
