"""OpenCue: an outline script (Python, pyoutline) with one Shell layer per run of frames.

Each layer covers its frames in chunks; OpenCue substitutes each chunk's first and last frame for
#FRAME_START# and #FRAME_END#. A stepped run (1001-1100x2) keeps its step after the tokens, and
frames with gaps become several layers, so a task never renders a frame that was not asked for.

The script written to disk is also what bake-seq itself runs to launch or serialise the job:
the outline is built by exactly one piece of code, which a farm admin can read and re-launch.
"""
from __future__ import annotations

import os
import pprint
import re
import shlex

import fileseq

from .task import FarmJob

FRAME_TOKENS = "#FRAME_START#-#FRAME_END#"

SCRIPT = '''\
#!/usr/bin/env python3
r"""OpenCue job for bake-seq: {plate} -> {output}.

Written by `bake-seq submit opencue`. Needs pyoutline (pip install opencue-pyoutline):
    python {file}                   launch on the Cuebot named by $CUEBOT_HOSTS
    python {file} --cuebot HOST     launch on HOST
    python {file} --spec            print the OpenCue job spec (XML) only; no Cuebot needed
Each task runs `bake-seq render ... --frames #FRAME_START#-#FRAME_END#` (the Cuebot fills in the
chunk's frames); finished frames are skipped, so a retried task only renders what is missing.
"""
import argparse
import tempfile

import outline
import outline.cuerun
from outline.modules.shell import Shell

JOB = {job}


def build_outline(job=JOB):
    ol = outline.Outline(job["name"], frame_range=job["range"], show=job["show"], shot=job["shot"])
    for layer in job["layers"]:
        ol.add_layer(Shell(layer["name"], command=layer["command"], range=layer["range"],
                           chunk=layer["chunk"], **job["layer_args"]))
    return ol


def job_spec(ol):
    """The XML the Cuebot receives. pyoutline stages a session folder first: a temporary one."""
    saved = outline.config.get("outline", "session_dir")
    with tempfile.TemporaryDirectory() as sessions:
        outline.config.set("outline", "session_dir", sessions)
        try:
            return outline.cuerun.OutlineLauncher(ol).serialize(use_pycuerun=False)
        finally:
            outline.config.set("outline", "session_dir", saved)


def launch(ol, cuebot=None):
    # use_pycuerun=False: the Cuebot runs the command itself, after filling in the frame tokens.
    return outline.cuerun.launch(ol, use_pycuerun=False, server=cuebot)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Launch (or print) this bake-seq OpenCue job.")
    parser.add_argument("--cuebot", help="Cuebot host (default: $CUEBOT_HOSTS)")
    parser.add_argument("--spec", action="store_true", help="print the job spec, launch nothing")
    args = parser.parse_args()
    if args.spec:
        print(job_spec(build_outline()))
    else:
        for launched in launch(build_outline(), args.cuebot):
            print("launched", launched.name())
'''


def frame_runs(frames: list[int]) -> list[tuple[str, int]]:
    """(OpenCue frame range, step) per arithmetic run: [1,3,5,9,10] -> ("1-5x2", 2), ("9-10", 1)."""
    runs = []
    for run in fileseq.FrameSet.framesToFrameRange(frames, sort=True, compress=False).split(","):
        step = int(run.split("x")[1]) if "x" in run else 1
        runs.append((run, step))
    return runs


def job_data(job: FarmJob, show: str | None, shot: str | None, layer_args: dict) -> dict:
    runs = frame_runs(job.frames)
    layers = []
    for index, (frames, step) in enumerate(runs, 1):
        token = FRAME_TOKENS + (f"x{step}" if step > 1 else "")
        # RQD hands the command to a POSIX shell after substituting the tokens: quote every word.
        command = shlex.join([job.exe, *job.render_args(token)])
        layers.append({"name": "render" if len(runs) == 1 else f"render_{index}", "range": frames,
                       "chunk": job.chunk, "command": command})
    return {"name": re.sub(r"[^A-Za-z0-9_]+", "_", job.name).strip("_") or "bake_seq",
            "range": ",".join(frames for frames, _ in runs), "show": show, "shot": shot,
            "layer_args": layer_args, "layers": layers}


def outline_script(job: FarmJob, file_name: str, show: str | None = None, shot: str | None = None,
                   layer_args: dict | None = None) -> str:
    data = job_data(job, show, shot, {k: v for k, v in (layer_args or {}).items() if v is not None})
    return SCRIPT.format(plate=job.plate, output=job.output, file=file_name,
                         job=pprint.pformat(data, indent=4, width=100, sort_dicts=False))


def load_script(text: str, file_name: str = "<bake-seq opencue job>") -> dict:
    """Run the script as a module (not as __main__): its build_outline, job_spec and launch.
    Raises ImportError when pyoutline is not installed."""
    namespace = {"__name__": "bake_seq_opencue_job", "__file__": file_name}
    exec(compile(text, file_name, "exec"), namespace)  # noqa: S102 - our own generated script
    return namespace


def cuebot_configured(cuebot: str | None) -> bool:
    return bool(cuebot or os.environ.get("CUEBOT_HOSTS", "").strip())
