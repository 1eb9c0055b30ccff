"""Render-farm integration: a shot becomes chunks of `bake-seq render --frames A-B`.

    task.py             the unit of work (one chunk) and the job every farm is built from
    openjd_bundle.py    Open Job Description job bundle (openjd-cli, AWS Deadline Cloud)
    opencue_outline.py  OpenCue job values (JSON) for opencue_job.py, launched or written to disk
    opencue_job.py      the pyoutline script that builds the outline (imported, or copied to disk)

A task is safe to retry: render resumes finished frames, writes atomically and exits 10/11 for
failures a retry can cure. `bake-seq status` tells what is left after the farm is done.
"""
