"""`bake-seq submit openjd|opencue SEQ [-o OUT] [--frames A-B] [--chunk N] [render options]`.

A shot becomes chunks of `bake-seq render --frames A-B` (plugins/farm, docs/farm.md). The submit
commands take every option render takes, read from render's own click parameters.
"""
from __future__ import annotations

import json
import os

import click

from ..cli import KnobHelp, render_cmd  # cli.py adds command modules at its end, after render exists
from ..errors import EXIT_WRITE, BakeError

# Options that only shape one process's own output, not the frames.
LOCAL_ONLY = ("json_summary", "quiet")


class FarmError(BakeError):
    """The job could not be handed to the farm (network, Cuebot down): worth retrying."""

    exit_code = EXIT_WRITE


def with_render_options(*excluded: str):
    """Give a command every parameter of `bake-seq render` (operator knobs included) but
    ``excluded``, so the farm and `status` accept exactly what render accepts."""

    def decorate(command: click.Command) -> click.Command:
        taken = [p for p in render_cmd.params if p.name not in excluded]
        clash = {p.name for p in command.params} & {p.name for p in taken}
        if clash:
            raise RuntimeError(f"bake-seq {command.name}: options {sorted(clash)} clash with render's")
        command.params.extend(taken)
        return command

    return decorate


def job_options(fn):
    options = [
        click.option("--chunk", type=click.IntRange(min=1), default=10, show_default=True,
                     help="frames per task; each task loads the model once (sizing: docs/farm.md)"),
        click.option("--bake-seq-exe", metavar="PATH",
                     help="bake-seq as the farm nodes see it [default: this one, as an absolute path]"),
        click.option("--name", help="job name [default: bake-seq <plate file pattern>]"),
        click.option("--accept-guessed-colorspace", "accept_guess", is_flag=True,
                     help="submit although the plate's colour space is only a guess from its file type "
                          "(untagged DPX = film log ADX10, untagged EXR = ACEScg); otherwise pass "
                          "--input-colorspace"),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def planned_job(sequence: str, opts: dict, chunk: int, exe: str | None, name: str | None, accept_guess: bool):
    from bake_seq.plugins.farm.task import plan_job

    return plan_job(click.get_current_context(), render_cmd, sequence, opts, chunk, exe, name, accept_guess)


@click.group("submit")
def command():
    """Send a render to a farm: chunks of `bake-seq render --frames A-B`, each safe to retry.

    \b
    Examples:
      bake-seq submit openjd shot_010/####.dpx -o out/####.exr --chunk 10 --bundle job/
      openjd run job/template.yaml -p file://job/parameter_values.yaml
      bake-seq submit opencue shot_010/####.dpx -o out/####.exr --checkpoint /models/bake.safetensors
    """


@with_render_options(*LOCAL_ONLY)
@command.command("openjd", cls=KnobHelp)
@click.option("--bundle", required=True, type=click.Path(), metavar="DIRECTORY",
              help="folder to write the job bundle into (template.yaml, parameter_values.yaml)")
@click.option("--deadline-cloud", is_flag=True,
              help="write parameter_values.yaml for `deadline bundle submit` (parameterValues list) "
                   "instead of for `openjd run -p file://...`")
@job_options
def openjd(bundle, deadline_cloud, chunk, bake_seq_exe, name, accept_guess, sequence, **opts):
    """Write an Open Job Description job bundle (Deadline Cloud, openjd-cli) for SEQUENCE.

    \b
    Example:
      bake-seq submit openjd shot_010/####.dpx -o out/####.exr --bundle job/ --checkpoint m.safetensors
      openjd check job/template.yaml
      openjd run job/template.yaml -p file://job/parameter_values.yaml
    """
    from bake_seq.plugins.farm.openjd_bundle import MAX_CHUNK, write_bundle
    from bake_seq.sequences.safe_write import check_target

    if chunk > MAX_CHUNK:
        from ..errors import SettingsError
        raise SettingsError(None, f"--chunk {chunk}: Deadline Cloud runs at most {MAX_CHUNK} frames per chunk",
                            f"use --chunk {MAX_CHUNK} or less")
    check_target(os.path.join(bundle, "template.yaml"), overwrite=True, what="job bundle",
                 fix="choose another --bundle folder")  # before the shot is analysed and its record stored
    job = planned_job(sequence, opts, chunk, bake_seq_exe, name, accept_guess)
    template, values = write_bundle(job, bundle, deadline_cloud)
    template, values = os.path.abspath(template), os.path.abspath(values)
    click.echo(f"wrote {template} and {values}: {len(job.frames)} frames in chunks of {chunk}")
    click.echo(f"  deadline bundle submit {os.path.dirname(template)}" if deadline_cloud
               else f"  openjd run {template} -p file://{values}")


@with_render_options(*LOCAL_ONLY)
@command.command("opencue", cls=KnobHelp)
@click.option("--cuebot", metavar="HOST", help="Cuebot to launch on [default: $CUEBOT_HOSTS]")
@click.option("--write", "write_dir", type=click.Path(), metavar="DIRECTORY",
              help="write the outline script, its values (JSON) and job spec into this folder instead "
                   "of launching [default when no Cuebot is configured: ./bake-seq-opencue]")
@click.option("--show", help="OpenCue show [default: $SHOW or pyoutline's]")
@click.option("--shot", help="OpenCue shot [default: $SHOT or pyoutline's]")
@click.option("--service", help="OpenCue service of the layers [default: the Cuebot's]")
@click.option("--cores", type=click.FloatRange(min=0), help="cores per task [default: the service's]")
@job_options
def opencue(cuebot, write_dir, show, shot, service, cores, chunk, bake_seq_exe, name, accept_guess, sequence,
            **opts):
    """Launch SEQUENCE on OpenCue, or write its outline script (pyoutline), values and job spec.

    \b
    Example:
      CUEBOT_HOSTS=cuebot bake-seq submit opencue shot_010/####.dpx -o out/####.exr --chunk 10
      bake-seq submit opencue shot_010/####.dpx --write cue_job/ && python cue_job/opencue_job.py
    """
    from bake_seq.plugins.farm.opencue_outline import cuebot_configured, job_data, job_json, load_job_module
    from bake_seq.sequences.safe_write import check_target

    if write_dir:  # before the shot is analysed and its record stored
        check_target(os.path.join(write_dir, "opencue_job.py"), overwrite=True, what="OpenCue job",
                     fix="choose another --write folder")
    job = planned_job(sequence, opts, chunk, bake_seq_exe, name, accept_guess)
    # The values are data (JSON), never Python source: the outline is built from what is written.
    values = job_json(job_data(job, show, shot, {"service": service, "cores": cores}))
    launch = not write_dir and cuebot_configured(cuebot)
    try:
        cue = load_job_module()
    except ImportError as exc:
        if launch:
            raise FarmError(None, f"pyoutline is not installed ({exc})",
                            "pip install opencue-pyoutline, or pass --write DIR") from None
        cue = None
    if launch:
        try:
            launched = cue.launch(cue.build_outline(json.loads(values)), cuebot)
        except Exception as exc:  # pycue raises its own connection errors; one line, retryable
            raise FarmError(None, f"OpenCue launch failed: {str(exc).splitlines()[0] if str(exc) else exc!r}",
                            "check --cuebot / $CUEBOT_HOSTS, or pass --write DIR") from None
        click.echo("launched " + ", ".join(j.name() for j in launched))
        return
    folder = write_dir or "bake-seq-opencue"
    written = write_opencue(folder, values, cue)
    click.echo(f"wrote {', '.join(written)}: {len(job.frames)} frames in chunks of {chunk}")
    click.echo(f"  launch: python {written[0]}   (needs pyoutline and $CUEBOT_HOSTS or --cuebot)")
    if cue is None:
        click.echo("note: pyoutline is not installed here: job spec not written", err=True)


def write_opencue(folder: str, values: str, cue) -> list[str]:
    """opencue_job.py (the shipped script, unchanged), opencue_job.json (this job's values) and,
    with pyoutline, opencue_job.xml (the spec they serialise to)."""
    from bake_seq.plugins.farm.opencue_outline import job_script
    from bake_seq.sequences.safe_write import write_file

    files = [(os.path.join(folder, "opencue_job.py"), job_script()),
             (os.path.join(folder, "opencue_job.json"), values)]
    if cue is not None:
        spec = cue.job_spec(cue.build_outline(json.loads(values)))
        files.append((os.path.join(folder, "opencue_job.xml"), spec))
    # The --write folder is this command's: writing again replaces its own files. The script
    # is made executable as it is created (a chmod afterwards would follow a link placed meanwhile).
    return [write_file(path, text, overwrite=True, what="OpenCue job", fix="choose another --write folder",
                       executable=path.endswith(".py")) for path, text in files]
