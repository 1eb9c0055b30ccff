"""The farm's unit of work: `bake-seq render PLATE -o OUT --frames A-B [options]` over one chunk.

The options are read back from the submit command line through the render command's own click
parameters, so every render option (operator knobs included, present and future) reaches the
farm without a list kept by hand here.
"""
from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from typing import Callable

import click
from click.core import ParameterSource

# Set per task by the job itself; never copied from the submit command line.
SET_BY_JOB = ("sequence", "output", "frames", "json_summary", "quiet", "chunk_of", "chunk_size")


@dataclass(frozen=True)
class Option:
    """One render option as the user gave it to `submit`."""

    name: str  # click parameter name, e.g. "checkpoint"
    flag: str  # e.g. "--checkpoint"
    value: str | None  # None for a bare flag
    is_path: bool  # a file on shared storage: absolute here, a PATH job parameter in OpenJD


@dataclass(frozen=True)
class FarmJob:
    name: str
    exe: str  # bake-seq as the farm nodes see it
    plate: str  # absolute frame pattern, e.g. /shots/sh010/plate.####.dpx
    output: str  # absolute frame pattern
    frames: list[int]
    chunk: int
    options: tuple[Option, ...]

    def render_args(self, frames: str, plate: str | None = None, output: str | None = None,
                    path: Callable[[Option], str] | None = None) -> list[str]:
        """Arguments after the executable; a farm substitutes its own tokens for the frames,
        and OpenJD its job parameters for the paths."""
        args = ["render", plate or self.plate, "-o", output or self.output, "--frames", frames]
        for option in self.options:
            args.append(option.flag)
            if option.value is not None:
                args.append(path(option) if path and option.is_path else option.value)
        return args


def absolute(path: str) -> str:
    """Farm tasks start in a scratch folder: relative paths would name nothing there."""
    return path if "://" in path else os.path.abspath(os.path.expanduser(path))


def given_options(ctx: click.Context, render: click.Command) -> tuple[Option, ...]:
    """The render options typed on the submit command line, back as command-line text."""
    options = []
    for param in render.params:
        if not isinstance(param, click.Option) or param.name in SET_BY_JOB:
            continue
        if ctx.get_parameter_source(param.name) is not ParameterSource.COMMANDLINE:
            continue  # defaults are the farm node's too; $BAKE_SEQ_PATH_MAP is per machine
        value = ctx.params[param.name]
        flag = next(opt for opt in param.opts if opt.startswith("--"))
        if param.is_flag:
            if value or param.secondary_opts:
                options.append(Option(param.name, flag if value else param.secondary_opts[0], None, False))
            continue
        for item in value if param.multiple else (value,):
            text = str(item)
            is_path = isinstance(param.type, click.Path) and "://" not in text
            options.append(Option(param.name, flag, absolute(text) if is_path else text, is_path))
    return tuple(options)


def default_exe() -> str:
    """This bake-seq, absolute: farm nodes often lack it on PATH (override with --bake-seq-exe)."""
    from bake_node.errors import SettingsError

    name = "bake-seq.exe" if os.name == "nt" else "bake-seq"
    beside = os.path.join(os.path.dirname(sys.executable), name)
    found = beside if os.path.isfile(beside) else shutil.which(name)
    if not found:
        raise SettingsError(None, "cannot find the bake-seq executable to write into the job",
                            "pass --bake-seq-exe with its path as the farm nodes see it")
    return os.path.abspath(found)


def plan_job(ctx: click.Context, render: click.Command, sequence: str, opts: dict, chunk: int,
             exe: str | None, name: str | None, accept_guess: bool = False) -> FarmJob:
    """Plan the shot here, so a bad plate, colour space or output fails now, not on every node.
    An operator that needs the whole shot (one correction per shot) gets it here, once: the
    correction is written beside the output and every chunk applies that file (``--grade``)."""
    from bake_node.cli import apply_config, make_request, operator_for
    from bake_node.node import get_operator
    from bake_node.render import check_output_folder, guess_warning, plan_render

    opts = apply_config(dict(opts))  # a bad --config file (unreadable, unknown knob) fails here too
    plan = plan_render(make_request(sequence, **opts))
    check_output_folder(plan, create=False)  # a file in the output path: exit 6 here as in render
    warning = guess_warning(plan)
    if warning and not accept_guess:  # every node would render the whole shot in a guessed space
        from bake_seq.ocio.errors import ColourError
        raise ColourError(f"{plan.pattern}: the input colour space {plan.input_colorspace.value!r} is only a guess "
                          f"from the file type ({plan.input_colorspace.reason})",
                          "pass --input-colorspace, or --accept-guessed-colorspace if the guess is right")
    if warning:
        click.echo(f"bake-seq: {warning}", err=True)
    options = given_options(ctx, render)
    if plan.config_source.reason == "$OCIO" and not opts.get("ocio_config"):
        # The nodes must convert with the config used here, not with whatever $OCIO they have.
        source = plan.config_source.value
        options += (Option("ocio_config", "--ocio", absolute(source), "://" not in source),)
    if get_operator(opts.get("op_name") or "bake").may_need_shot(opts):  # loads no model otherwise
        op = operator_for(opts)
        if op.needs_shot:
            knob, path = shot_correction(plan, op)
            flag = next(k.flag for k in op.all_knobs() if k.name == knob)
            options += (Option(knob, flag, path, True),)
    plate = absolute(str(plan.pattern))
    return FarmJob(name or f"bake-seq {os.path.basename(plate)}", exe or default_exe(), plate,
                   absolute(str(plan.output)), plan.frames, chunk, options)


def shot_correction(plan, op) -> tuple[str, str]:
    """Analyse the shot over every frame of the job (the global model's correction, the plate's
    colour change) and store the operator's record in OUTPUT_FOLDER/.bake-seq/ (shared storage
    the nodes already write to), named by its hash: (knob, path) for every chunk's command."""
    from bake_node.render import analyse_shot
    from bake_seq.sequences.errors import OutputError

    analyse_shot(plan, op, lambda text: click.echo(f"bake-seq: {text}", err=True))
    folder = os.path.join(os.path.dirname(absolute(str(plan.output))), ".bake-seq")
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise OutputError(folder, f"cannot create the folder for the shot's correction ({exc.strerror or exc})",
                          "check the output folder is writable from here") from None
    return op.store_shot(folder, {"plate": str(plan.pattern), "input_colorspace": plan.input_colorspace.value,
                                  "ocio_config_id": plan.config_id})
