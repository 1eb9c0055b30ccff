"""`bake-seq info --temporal`: a plate's own colour change (temporal.py), frame by frame, as a
table, a JSON object, a plot (PNG), the stored analysis (JSON) and an ASC CDL collection (.ccc)
(issue 31, item 4).

Every change shown or written is a *correction*: the change that brings a frame's colour to a
reference, per channel in linear Rec.709 (temporal.Change). ``--to first``: the frame's segment's
first frame (its ``state``); ``--to deflicker``: a smoothed state of its neighbours
(Analysis.deflicker, ``--window`` sigma in frames), so an intended ramp reads ~0 and only the
flicker is left. A frame half a stop brighter than its reference reads -0.5 stops, and its .ccc
slope darkens it by half a stop.
"""
from __future__ import annotations

import io
import os
from xml.sax.saxutils import escape, quoteattr

from .temporal import DEFLICKER_WINDOW, LUMA, Analysis, Change, analyse_frames, analysis_sha256, cdl, save_analysis

TARGETS = ("first", "deflicker")
DEFAULT_WINDOW = DEFLICKER_WINDOW  # frames: Gaussian sigma of --to deflicker, as --op deflicker's default
LINEAR_SPACE = "Linear Rec.709 (sRGB)"  # what a .ccc's values apply to, as the studio config names it
CCC_NAMESPACE = "urn:ASC:CDL:v1.01"


def corrections(analysis: Analysis, to: str = "first", window: float = DEFAULT_WINDOW) -> list[Change]:
    """Per frame of ``analysis``, the change the report shows and writes (module docstring)."""
    if to == "first":
        return [f.state for f in analysis.frames]
    if to == "deflicker":
        return analysis.deflicker(window)
    raise ValueError(f"unknown reference {to!r}; use one of {', '.join(TARGETS)}")


def describe(change: Change) -> dict:
    """The few numbers a person reads: exposure (Rec.709-luminance-weighted mean of the three
    channels' stops), white balance as red and blue relative to green (stops), mean contrast."""
    r, g, b = change.stops
    return {"exposure": LUMA[0] * r + LUMA[1] * g + LUMA[2] * b, "red_minus_green": r - g,
            "blue_minus_green": b - g, "contrast": sum(change.contrast) / 3.0}


def rows(analysis: Analysis, changes: list[Change]) -> list[dict]:
    return [{"frame": f.frame, "segment": f.segment, **describe(c), "confidence": f.confidence,
             "change": c.as_dict()} for f, c in zip(analysis.frames, changes)]


def largest(table: list[dict]) -> dict:
    """The largest exposure and white-balance correction (the larger of |R-G| and |B-G|), and where."""
    exposure = max(table, key=lambda r: abs(r["exposure"]))
    balance = max(table, key=lambda r: max(abs(r["red_minus_green"]), abs(r["blue_minus_green"])))
    return {"exposure": {"stops": exposure["exposure"], "frame": exposure["frame"]},
            "white_balance": {"red_minus_green": balance["red_minus_green"],
                              "blue_minus_green": balance["blue_minus_green"], "frame": balance["frame"]}}


def reference_words(to: str, window: float) -> str:
    return ("each segment's first frame" if to == "first"
            else f"a smoothed state of its neighbours (sigma {window:g} frames)")


def text_lines(analysis: Analysis, table: list[dict], to: str, window: float) -> list[str]:
    lines = [f"corrections to {reference_words(to, window)}, linear Rec.709; exposure and white balance in stops",
             f"{'frame':>7} {'segment':>7} {'exposure':>9} {'R-G':>7} {'B-G':>7} {'contrast':>8} {'confidence':>10}"]
    for r in table:
        lines.append(f"{r['frame']:>7} {r['segment']:>7} {r['exposure']:>+9.3f} {r['red_minus_green']:>+7.3f} "
                     f"{r['blue_minus_green']:>+7.3f} {r['contrast']:>8.3f} {r['confidence']:>10.2f}")
    top = largest(table)
    cuts = analysis.cuts
    exposure, balance = top["exposure"], top["white_balance"]
    lines.append(f"cuts: {', '.join(map(str, cuts)) if cuts else 'none'}; "
                 f"largest exposure {exposure['stops']:+.3f} stops at frame {exposure['frame']}; "
                 f"largest white balance R-G {balance['red_minus_green']:+.3f} B-G {balance['blue_minus_green']:+.3f} "
                 f"stops at frame {balance['frame']}")
    return lines


def report_dict(analysis: Analysis, table: list[dict], to: str, window: float, about: dict) -> dict:
    """What --json prints: the analysis record (as --write stores it) plus the cuts and the table."""
    return {**analysis.as_dict(), "about": about, "sha256": analysis_sha256(analysis), "cuts": analysis.cuts,
            "to": to, "window": window if to == "deflicker" else None, "per_frame": table, "largest": largest(table)}


def _numbers(values) -> str:
    return " ".join(f"{v:.7g}" for v in values)


def ccc_text(analysis: Analysis, changes: list[Change], description: str) -> str:
    """An ASC CDL ColorCorrectionCollection: one ColorCorrection id="frame.NNNN" per frame."""
    out = ['<?xml version="1.0" encoding="UTF-8"?>', f'<ColorCorrectionCollection xmlns="{CCC_NAMESPACE}">',
           f"  <Description>{escape(description)}</Description>"]
    for record, change in zip(analysis.frames, changes):
        slope, offset, power = cdl(change)
        out += [f"  <ColorCorrection id={quoteattr(f'frame.{record.frame:04d}')}>",
                f"    <Description>frame {record.frame}, segment {record.segment}</Description>",
                "    <SOPNode>", f"      <Slope>{_numbers(slope)}</Slope>",
                f"      <Offset>{_numbers(offset)}</Offset>",
                f"      <Power>{_numbers(power)}</Power>", "    </SOPNode>",
                "    <SatNode>", "      <Saturation>1</Saturation>", "    </SatNode>", "  </ColorCorrection>"]
    return "\n".join(out + ["</ColorCorrectionCollection>"]) + "\n"


def plot_png(analysis: Analysis, changes: list[Change], title: str) -> bytes:
    """Two panels over frame numbers: per-channel stops and contrast, dashed lines at cuts."""
    need_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    frames = [f.frame for f in analysis.frames]
    fig = Figure(figsize=(8, 5), dpi=100)
    FigureCanvasAgg(fig)  # Agg, without pyplot: no global backend switched inside a host
    top, bottom = fig.subplots(2, 1, sharex=True)
    segments = [[j for j, f in enumerate(analysis.frames) if f.segment == s]
                for s in sorted({f.segment for f in analysis.frames})]
    for i, (name, colour) in enumerate(zip("RGB", ("tab:red", "tab:green", "tab:blue"))):
        for k, segment in enumerate(segments):  # one line per segment: a cut is never bridged
            at = [frames[j] for j in segment]
            top.plot(at, [changes[j].stops[i] for j in segment], color=colour, label=name if not k else None,
                     marker=".")
            bottom.plot(at, [changes[j].contrast[i] for j in segment], color=colour, marker=".")
    for ax, (low, high) in ((top, (-0.1, 0.1)), (bottom, (0.95, 1.05))):  # noise is not magnified to fill a panel
        for cut in analysis.cuts:
            ax.axvline(cut, color="0.3", linestyle="--", linewidth=1)
        ax.grid(alpha=0.3)
        ax.ticklabel_format(axis="y", useOffset=False)
        bottom_, top_ = ax.get_ylim()
        ax.set_ylim(min(bottom_, low), max(top_, high))
    bottom.xaxis.set_major_locator(MaxNLocator(integer=True))
    top.set_ylabel("stops (linear)")
    bottom.set_ylabel("contrast")
    bottom.set_xlabel("frame" + (" (dashed: cuts)" if analysis.cuts else ""))
    top.legend(loc="best", fontsize=8)
    top.set_title(title, fontsize=9)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def need_matplotlib() -> None:
    """matplotlib comes with bake-seq[train], not with the node: say so before any work."""
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        from .errors import SettingsError
        raise SettingsError(None, "--plot needs matplotlib, which is not installed",
                            "pip install matplotlib (or bake-seq[train]), or leave out --plot")


def check_outputs(outputs: dict, inputs: list[str], overwrite: bool) -> None:
    """Refuse every output before the analysis reads a frame: an input, an existing file without
    --overwrite, two options naming one file, a --plot or --ccc of another type."""
    import click

    from bake_seq.sequences.safe_write import check_target

    seen: dict[str, str] = {}
    for option, path in outputs.items():
        if not path:
            continue
        suffix = {"--plot": ".png", "--ccc": ".ccc"}.get(option)
        if suffix and not path.lower().endswith(suffix):
            raise click.UsageError(f"{option} writes a {suffix[1:].upper()} file: give a name ending in {suffix}")
        target = check_target(path, inputs=inputs, overwrite=overwrite, what=WHAT[option],
                              fix=f"choose another {option}")
        if target in seen:
            raise click.UsageError(f"{seen[target]} and {option} name the same file {path}")
        seen[target] = option
    if outputs.get("--plot"):
        need_matplotlib()


WHAT = {"--plot": "temporal plot", "--write": "temporal analysis", "--ccc": "CDL collection"}


def temporal_info(plan, inputs: list[str], *, to: str = "first", window: float = DEFAULT_WINDOW,
                  plot: str | None = None, write: str | None = None, ccc: str | None = None,
                  overwrite: bool = False, say=None) -> tuple[Analysis, list[dict], dict]:
    """Analyse every frame of ``plan`` and write the outputs asked for. ``inputs``: what no output
    may be (render.command_inputs). Returns (analysis, table, about)."""
    from bake_seq.sequences.pattern import format_frame_ranges
    from bake_seq.sequences.safe_write import write_file

    from .render import load_frame

    outputs = {"--plot": plot, "--write": write, "--ccc": ccc}
    check_outputs(outputs, inputs, overwrite)
    if say:
        say(f"measuring the colour change of {len(plan.frames)} frames of {plan.pattern}")
    analysis = analyse_frames(plan.frames, lambda n: load_frame(plan, n).rgb)
    changes = corrections(analysis, to, window)
    table = rows(analysis, changes)
    about = {"sequence": str(plan.pattern), "frames": format_frame_ranges(plan.frames),
             "input_colorspace": plan.input_colorspace.value, "bit_depth": plan.bit_depth.value,
             "ocio_config": plan.config_id}
    target = {"inputs": inputs, "overwrite": overwrite}
    files = []  # made before any file is written: a plot that cannot be drawn writes nothing
    if ccc:
        description = (f"bake-seq info --temporal of {plan.pattern} ({plan.input_colorspace.value}): per frame, the "
                       f"correction to {reference_words(to, window)}. Apply to LINEAR Rec.709 values "
                       f"(OCIO '{LINEAR_SPACE}'), not to the plate's encoding; y = (slope * x)^power per channel.")
        files.append(("--ccc", ccc, ccc_text(analysis, changes, description)))
    if plot:
        title = f"{os.path.basename(str(plan.pattern))}: corrections to {reference_words(to, window)}"
        files.append(("--plot", plot, plot_png(analysis, changes, title)))
    if write:
        save_analysis(write, analysis, about, fix="choose another --write", **target)
    for option, path, content in files:
        write_file(path, content, what=WHAT[option], fix=f"choose another {option}", **target)
    return analysis, table, about


def info_temporal(plan, opts: dict, as_json: bool, *, temporal_to: str | None, window: float | None,
                  plot: str | None, write_record: str | None, ccc: str | None, overwrite: bool) -> None:
    """`bake-seq info --temporal`: the table (or --json) on stdout, progress on stderr."""
    import json

    import click

    from .render import command_inputs

    to = temporal_to or "first"
    if window is not None and to != "deflicker":
        raise click.UsageError("--window is the smoothing of --to deflicker")
    window = DEFAULT_WINDOW if window is None else window
    analysis, table, about = temporal_info(plan, command_inputs(plan, opts), to=to, window=window, plot=plot,
                                           write=write_record, ccc=ccc, overwrite=overwrite,
                                           say=lambda text: click.echo(f"bake-seq: {text}", err=True))
    if as_json:
        click.echo(json.dumps(report_dict(analysis, table, to, window, about), indent=1))
    else:
        click.echo("\n".join(text_lines(analysis, table, to, window)))
