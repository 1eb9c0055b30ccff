"""`bake-seq status OUT [SEQ] [render options]`: which frames of a shot are done, missing or stale.

With SEQ (and the render options the job used) every frame is judged exactly as a re-render
would judge it: same checkpoint and settings (fingerprint), source frame unchanged. With OUT
alone the per-frame records are compared with each other: the newest record is the reference,
and frames between the first and last one (or in --frames) without an output are missing.
"""
from __future__ import annotations

import json
import os

import click

from ..cli import KnobHelp

from .submit import with_render_options

from ..errors import EXIT_INCOMPLETE  # frames missing or stale; 0 when every frame is done


@with_render_options("sequence", "output", "json_summary", "quiet", "overwrite", "skip_missing", "device", "tile")
@click.command("status", cls=KnobHelp)
@click.argument("output", metavar="OUT", type=click.Path())
@click.argument("sequence", required=False, type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="machine-readable report on stdout")
def command(output, sequence, as_json, **opts):
    """Report which frames of OUT are done, missing or stale; exit 7 unless all are done.

    \b
    Examples:
      bake-seq status out/####.exr shot_010/####.dpx --checkpoint bake.safetensors
      bake-seq status out/ --json
    """
    if sequence:
        target, frames, reference = judged_against_plate(output, sequence, opts)
    else:
        from bake_node.cli import map_path

        output = map_path(output, opts.get("path_map") or ())
        target, frames, reference = judged_against_records(output, opts.get("frames"))
    report = summarise(target, frames, reference)
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        print_report(report)
    if not report["complete"]:
        raise click.exceptions.Exit(EXIT_INCOMPLETE)


def judged_against_plate(out: str, sequence: str, opts: dict):
    from bake_node.cli import apply_config, make_request, map_paths, operator_for
    from bake_node.render import analyse_shot, fingerprint_of, plan_render

    sequence, opts = map_paths(sequence, {**apply_config(opts), "output": out})
    plan = plan_render(make_request(sequence, **opts, skip_missing=True))
    op = operator_for({**opts, "device": "cpu"})  # not part of the fingerprint; no GPU needed here
    analyse_shot(plan, op)  # a shot's correction is part of every frame's fingerprint
    fingerprint = fingerprint_of(plan, op)
    now = {"settings": plan.settings_record(), "operator": op.fingerprint()}
    frames = {n: judge(plan.output.path(n), fingerprint, plan.pattern.path(n), now) for n in plan.frames}
    frames.update({n: ("missing", "no plate frame to render from") for n in plan.missing})
    return str(plan.output), frames, "the plate and these settings"


def judged_against_records(out: str, wanted: list[int] | None):
    from bake_seq.sequences.manifest import read_record, record_path

    pattern = output_pattern(out)
    records = {n: read_record(pattern.path(n)) for n in pattern.scan()}
    dated = [(os.stat(record_path(pattern.path(n))).st_mtime_ns, n) for n, r in records.items() if r]
    if not dated:
        from bake_node.errors import SettingsError
        raise SettingsError(str(pattern), "no frames written by bake-seq here",
                            "check the output path, or give the plate: bake-seq status OUT SEQ [options]")
    newest = records[max(dated)[1]]
    expected = wanted or range(min(records), max(records) + 1)
    frames = {n: judge(pattern.path(n), newest["fingerprint"], None, newest) for n in expected}
    return str(pattern), frames, f"the newest record (frame {newest.get('frame')}); plate not checked"


def output_pattern(out: str):
    """OUT as a frame pattern; a folder names the one sequence bake-seq recorded in it."""
    from bake_seq.sequences.manifest import RECORD_DIR
    from bake_seq.sequences.pattern import FramePattern

    if not os.path.isdir(out):
        return FramePattern.parse(out)
    names = os.listdir(os.path.join(out, RECORD_DIR)) if os.path.isdir(os.path.join(out, RECORD_DIR)) else []
    found = set()
    for name in names:
        frame_file = os.path.join(out, name.removesuffix(".json"))
        if name.endswith(".json") and os.path.isfile(frame_file):
            found.add(str(FramePattern.parse(frame_file)))
    if len(found) != 1:
        from bake_node.errors import SettingsError
        problem = "holds no frames written by bake-seq" if not found else f"holds {len(found)} sequences"
        raise SettingsError(out, problem, "give the output pattern, e.g. out/shot.####.exr")
    return FramePattern.parse(found.pop())


def judge(path: str, fingerprint: str, source: str | None, now: dict | None) -> tuple[str, str]:
    """(state, reason); a stale frame's reason names what changed (checkpoint, colour space...)."""
    from bake_seq.sequences.manifest import frame_state, read_record

    state = frame_state(path, fingerprint, source)
    if state.state != "stale" or not now:
        return state.state, state.reason
    record = read_record(path) or {}
    changed = [f"{key} {shorten(then)} -> {shorten(value)}"
               for part in ("settings", "operator")
               for key, value in (now.get(part) or {}).items()
               if (then := (record.get(part) or {}).get(key)) != value]
    return "stale", state.reason + (f" ({'; '.join(changed)})" if changed else "")


def shorten(value) -> str:
    text = str(value)
    return text[:12] + "…" if len(text) > 16 and " " not in text else text


def summarise(target: str, frames: dict[int, tuple[str, str]], reference: str) -> dict:
    from bake_seq.sequences.pattern import format_frame_ranges

    groups: dict[tuple[str, str], list[int]] = {}
    for n in sorted(frames):
        groups.setdefault(frames[n], []).append(n)
    counts: dict[str, int] = {}
    for (state, _), numbers in groups.items():
        counts[state] = counts.get(state, 0) + len(numbers)
    return {
        "output": target, "judged_against": reference,
        "frames": format_frame_ranges(frames) if frames else "", "frame_count": len(frames),
        "complete": bool(frames) and counts.get("done", 0) == len(frames), "counts": counts,
        "groups": [{"state": state, "reason": reason, "frames": format_frame_ranges(numbers),
                    "count": len(numbers)} for (state, reason), numbers in groups.items()],
        "frame_states": {str(n): state for n, (state, _) in sorted(frames.items())},
    }


def print_report(report: dict) -> None:
    click.echo(f"{report['output']}: {report['frame_count']} frames {report['frames']} "
               f"(judged against {report['judged_against']})")
    for group in report["groups"]:
        reason = "" if group["state"] == "done" else f"   {group['reason']}"
        click.echo(f"  {group['state']:<10} {group['count']:>5}  {group['frames']}{reason}")
    todo = report["frame_count"] - report["counts"].get("done", 0)
    click.echo("complete" if report["complete"] else
               f"incomplete: {todo} of {report['frame_count']} frames to render — run the same render "
               f"or submit again (finished frames are skipped)")
