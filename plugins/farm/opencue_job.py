#!/usr/bin/env python3
"""OpenCue job for bake-seq: builds the pyoutline outline from opencue_job.json beside this file.

Written by `bake-seq submit opencue --write DIR` as DIR/opencue_job.py, with the job's values in
DIR/opencue_job.json. Needs pyoutline (pip install opencue-pyoutline), not bake-seq:
    python opencue_job.py                   launch on the Cuebot named by $CUEBOT_HOSTS
    python opencue_job.py --cuebot HOST     launch on HOST
    python opencue_job.py --spec            print the OpenCue job spec (XML) only; no Cuebot needed
    python opencue_job.py --job FILE        read the values from FILE instead
Each task runs `bake-seq render ... --frames #FRAME_START# --chunk-of RANGE --chunk-size N` (the
Cuebot fills in the chunk's first frame; bake-seq counts the chunk, right on any Cuebot);
finished frames are skipped, so a retried task only renders what is missing.

This file is never generated: it is a copy of plugins/farm/opencue_job.py, the module bake-seq
itself imports to launch or serialise the job. Every value of the job (paths, names, commands)
is data in the JSON file, so a path cannot turn into code here.
"""
import argparse
import json
import os
import tempfile

import outline
import outline.cuerun
from outline.modules.shell import Shell

JOB_FILE = "opencue_job.json"


def read_job(path=None):
    path = path or os.path.join(os.path.dirname(os.path.abspath(__file__)), JOB_FILE)
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def build_outline(job):
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


def main(argv=None):
    parser = argparse.ArgumentParser(description="Launch (or print) this bake-seq OpenCue job.")
    parser.add_argument("--cuebot", help="Cuebot host (default: $CUEBOT_HOSTS)")
    parser.add_argument("--spec", action="store_true", help="print the job spec, launch nothing")
    parser.add_argument("--job", metavar="FILE",
                        help=f"the job's values (default: {JOB_FILE} beside this file)")
    args = parser.parse_args(argv)
    ol = build_outline(read_job(args.job))
    if args.spec:
        print(job_spec(ol))
    else:
        for launched in launch(ol, args.cuebot):
            print("launched", launched.name())


if __name__ == "__main__":
    main()
