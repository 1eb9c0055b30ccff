"""`bake-seq status OUT [SEQ] [render options]`: which frames of a shot are done, missing or stale.

With SEQ (and the render options the job used) every frame is judged exactly as a re-render
would judge it: same checkpoint and settings (fingerprint), source frame unchanged. With OUT
alone the per-frame records are compared with each other: the newest record is the reference,
and frames between the first and last one (or in --frames) without an output are missing.
Only frames on disk or asked for are looked at one by one: the gaps between frames on disk are
counted as ranges (outputs at frames 1 and 9,999,999 are two frames and one gap, not 10 M checks).
A record that is not what bake-seq writes (a field missing or of another type) counts as none:
the frame is "unrecorded", as a render would render it again.
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
    gaps = []
    if sequence:
        target, frames, reference = judged_against_plate(output, sequence, opts)
    else:
        from bake_node.cli import map_path

        output = map_path(output, opts.get("path_map") or ())
        target, frames, gaps, reference = judged_against_records(output, opts.get("frames"))
    report = summarise(target, frames, reference, gaps)
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
    if os.path.isdir(opts["output"]):  # the sequence rendered there, whatever its extension (EXR of PNG plates)
        opts["output"] = recorded_sequence(opts["output"], sequence) or opts["output"]
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
    on_disk = pattern.scan()
    records = {n: record for n in on_disk if (record := read_record(pattern.path(n)))}
    dated = []
    for n in records:
        try:
            dated.append((os.stat(record_path(pattern.path(n))).st_mtime_ns, n))
        except OSError:
            pass  # removed since it was read: another render at work
    if not dated:
        from bake_node.errors import SettingsError
        raise SettingsError(str(pattern), "no frames written by bake-seq here",
                            "check the output path, or give the plate: bake-seq status OUT SEQ [options]")
    newest = records[max(dated)[1]]
    frames = {n: judge(pattern.path(n), newest["fingerprint"], None, newest) for n in (wanted or on_disk)}
    gaps = [] if wanted else [(a + 1, b - 1) for a, b in zip(on_disk, on_disk[1:]) if b > a + 1]
    return str(pattern), frames, gaps, f"the newest record (frame {newest['frame']}); plate not checked"


def output_pattern(out: str):
    """OUT as a frame pattern; a folder names the one sequence bake-seq recorded in it."""
    from bake_node.errors import SettingsError
    from bake_node.render import has_padding_token
    from bake_seq.sequences.pattern import FramePattern

    if not os.path.isdir(out):
        if not os.path.exists(out) and not (has_padding_token(out) and os.path.isdir(os.path.dirname(out) or ".")):
            raise SettingsError(out, "does not exist", "give the output folder or pattern the render wrote, "
                                "e.g. out/ or out/shot.####.exr")
        return FramePattern.parse(out)
    found = recorded_sequences(out)
    if len(found) != 1:
        problem = "holds no frames written by bake-seq" if not found else f"holds {len(found)} sequences"
        raise SettingsError(out, problem, "give the output pattern, e.g. out/shot.####.exr")
    return FramePattern.parse(found.pop())


def recorded_sequences(out: str) -> set[str]:
    """The frame patterns of the frames in folder ``out`` that have a bake-seq record."""
    from bake_seq.sequences.manifest import RECORD_DIR
    from bake_seq.sequences.pattern import FramePattern

    records = os.path.join(out, RECORD_DIR)
    found: dict[tuple, FramePattern] = {}
    for name in os.listdir(records) if os.path.isdir(records) else []:
        frame_file = os.path.join(out, name.removesuffix(".json"))
        if name.endswith(".json") and os.path.isfile(frame_file):
            pattern = FramePattern.parse(frame_file)
            key = (pattern.directory, pattern.prefix, pattern.suffix)  # 9999 and 10000 are one #### sequence
            if key not in found or pattern.padding < found[key].padding:
                found[key] = pattern
    return {str(pattern) for pattern in found.values()}


def recorded_sequence(out: str, plate: str) -> str | None:
    """The sequence bake-seq rendered from ``plate`` into folder ``out``: the only one there, or
    the one named like the plate (render keeps the plate's names; -o may change the extension)."""
    from bake_seq.sequences.pattern import FramePattern

    found = recorded_sequences(out)
    if len(found) > 1:
        stem = os.path.splitext(os.path.basename(str(FramePattern.parse(plate))))[0]
        found = {p for p in found if os.path.splitext(os.path.basename(p))[0] == stem}
    return found.pop() if len(found) == 1 else None


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


def summarise(target: str, frames: dict[int, tuple[str, str]], reference: str,
              gaps: list[tuple[int, int]] = ()) -> dict:
    """The report; ``gaps`` are (first, last) runs of frames missing between frames on disk,
    counted without being listed one by one (``frame_states`` holds the frames judged)."""
    from bake_seq.sequences.pattern import format_frame_ranges

    groups: dict[tuple[str, str], list[int]] = {}
    for n in sorted(frames):
        groups.setdefault(frames[n], []).append(n)
    counts: dict[str, int] = {}
    for (state, _), numbers in groups.items():
        counts[state] = counts.get(state, 0) + len(numbers)
    report_groups = [{"state": state, "reason": reason, "frames": format_frame_ranges(numbers),
                      "count": len(numbers)} for (state, reason), numbers in groups.items()]
    gap_count = sum(last - first + 1 for first, last in gaps)
    if gaps:
        counts["missing"] = counts.get("missing", 0) + gap_count
        runs = ",".join(f"{a}-{b}" if b > a else f"{a}" for a, b in gaps)
        report_groups.append({"state": "missing", "reason": "no output file (between frames on disk)",
                              "frames": runs, "count": gap_count})
    total = len(frames) + gap_count
    span = f"{min(frames)}-{max(frames)}" if gaps else format_frame_ranges(frames) if frames else ""
    return {
        "output": target, "judged_against": reference, "frames": span, "frame_count": total,
        "complete": bool(frames) and counts.get("done", 0) == total, "counts": counts,
        "groups": report_groups,
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
