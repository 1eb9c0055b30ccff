"""bake-seq inside Nuke: one node per bake-seq operator, knobs made from the operator's knobs,
rendering the upstream Read's frame range through `bake-seq render` (or the farm submitter).

Nuke's Python cannot import bake-seq (it lives in its own environment with torch), so the knobs
come from ``bake_seq.json``, written beside this file by `bake-seq plugins install nuke`: the
command that runs bake-seq and every operator's knob declaration (`bake-seq plugins describe`).
Everything above the "Nuke glue" line is plain Python, tested without Nuke.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import threading

CONFIG_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bake_seq.json")
OP_KNOB = "bake_seq_op"  # hidden knob naming the node's operator
KNOB_CLASSES = {"int": "Int_Knob", "float": "Double_Knob", "bool": "Boolean_Knob",
                "choice": "Enumeration_Knob", "path": "File_Knob", "str": "String_Knob"}
OUTPUT_EXTENSIONS = ("exr", "dpx", "png", "tif", "tiff")
FARMS = ("openjd", "opencue")
PROGRESS = re.compile(r"frame (-?\d+) .*\((\d+)/(\d+)[,)]")  # "(3/10)" or "(3/10, eta 16s)"

# The knobs every node has besides its operator's: what `bake-seq render` needs to know.
RENDER_KNOBS = (
    {"class": "String_Knob", "name": "frames", "label": "frames",
     "tooltip": "frames to render, e.g. 1001-1100x2; blank: the upstream Read's range"},
    {"class": "File_Knob", "name": "output", "label": "output",
     "tooltip": "output frames, e.g. /shots/010/bake/plate.####.exr; blank: <plate folder>_bake/<same names>"},
    {"class": "String_Knob", "name": "input_colorspace", "label": "input colour space",
     "tooltip": "the plate's OCIO colour space; blank: bake-seq decides from metadata and format"},
    {"class": "String_Knob", "name": "output_colorspace", "label": "output colour space",
     "tooltip": "colour space to write; blank: the input's"},
)
# Operators that can learn a shot's correction from keys (`bake-seq learn`), and the knob that
# then takes the learned file.
LEARN_OPS = {"bake": "checkpoint", "colorize": "colorize_checkpoint"}
LEARN_KNOBS = (
    {"class": "String_Knob", "name": "key_frames", "label": "key frames",
     "tooltip": "frames of the corrected Read (the node's 'keys' input) to learn from, e.g. 1001,1100; "
                "blank: every frame of that Read"},
    {"class": "File_Knob", "name": "learned", "label": "learned model",
     "tooltip": "where Learn writes the shot's correction (.safetensors); blank: <plate folder>_learned.safetensors"},
)
FARM_KNOBS = (
    {"class": "Enumeration_Knob", "name": "farm", "label": "farm", "values": list(FARMS),
     "tooltip": "farm to submit to with `bake-seq submit`"},
    {"class": "String_Knob", "name": "farm_args", "label": "farm options",
     "tooltip": "extra `bake-seq submit` options, e.g. --chunk 10 --bundle /jobs/shot010"},
)


def load_config(path: str | None = None) -> dict:
    """{"command": [...], "operators": [...]}; without the file, ask the bake-seq on PATH."""
    path = path or CONFIG_FILE
    if os.path.exists(path):
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    command = ["bake-seq"]
    described = subprocess.run(command + ["plugins", "describe"], capture_output=True, text=True, check=True)
    return {"command": command, "operators": json.loads(described.stdout)}


def operator(config: dict, name: str) -> dict:
    for op in config["operators"]:
        if op["name"] == name:
            return op
    raise KeyError(f"bake-seq has no operator {name!r}; re-run `bake-seq plugins install nuke`")


def knob_specs(op: dict) -> list[dict]:
    """The Nuke knobs for an operator's knobs: class, name, label, default, values, range, tooltip."""
    specs = []
    for knob in op["knobs"]:
        spec = {"class": KNOB_CLASSES[knob["type"]], "name": knob["name"],
                "label": knob["name"].replace("_", " "), "tooltip": knob["help"],
                "default": "" if knob["default"] is None else knob["default"]}
        if knob["choices"]:
            spec["values"] = list(knob["choices"])
        if knob["min"] is not None and knob["max"] is not None:
            spec["range"] = (knob["min"], knob["max"])
        specs.append(spec)
    return specs


def knob_args(knob: dict, value) -> list[str]:
    """Command-line arguments for one knob value: the same rule as bake_node's Knob.cli_args
    (tests hold the two together), written again because Nuke cannot import bake_node."""
    if value is None or value == "":
        return []
    if knob["type"] == "bool":
        return [knob["flag"] if value else knob["negative_flag"]]
    if knob["type"] == "int":
        value = int(value)  # Nuke's Int_Knob may hand back a float
    return [knob["flag"], str(value)]


def default_output(plate: str) -> str:
    """Where `bake-seq render` writes when -o is not given: <plate folder>_bake/<same names>."""
    folder, name = os.path.split(os.path.abspath(plate))
    stem, ext = os.path.splitext(name)
    if ext.lower().lstrip(".") not in OUTPUT_EXTENSIONS:
        name = stem + ".png"  # JPEG plates are written as 16-bit PNG
    return os.path.join(folder + "_bake", name)


def render_args(op: dict, values: dict, plate: str, frames: str) -> list[str]:
    """Everything after `bake-seq render` (or `bake-seq submit FARM`) for a node's knob values."""
    args = [plate, "--op", op["name"], "--frames", values.get("frames") or frames,
            "-o", values.get("output") or default_output(plate)]
    for name, flag in (("input_colorspace", "--input-colorspace"), ("output_colorspace", "--output-colorspace")):
        if values.get(name):
            args += [flag, values[name]]
    for knob in op["knobs"]:
        args += knob_args(knob, values.get(knob["name"]))
    return args


def render_command(config: dict, op: dict, values: dict, plate: str, frames: str) -> list[str]:
    return [*config["command"], "render", *render_args(op, values, plate, frames)]


def submit_command(config: dict, op: dict, values: dict, plate: str, frames: str) -> list[str]:
    """The hook for farm rendering: `bake-seq submit FARM <render arguments> [farm options]`."""
    extra = shlex.split(values.get("farm_args") or "", posix=os.name != "nt")  # quoted paths with spaces
    return [*config["command"], "submit", values.get("farm") or FARMS[0],
            *render_args(op, values, plate, frames), *extra]


def frame_file(pattern: str, number: int) -> str:
    """One frame's file of a Nuke file pattern (#### / %04d / $F4 / @@@@)."""
    path = re.sub(r"%(0?)(\d*)d", lambda m: f"{number:0{int(m[2] or 1)}d}", pattern)
    path = re.sub(r"\$F(\d*)", lambda m: f"{number:0{int(m[1] or 1)}d}", path)
    return re.sub(r"#+|@+", lambda m: f"{number:0{len(m[0])}d}", path)


def frame_list(frames: str) -> list[int]:
    """Every frame of 1001-1005, 1001,1010 or 1001-1100x10."""
    numbers = []
    for part in frames.split(","):
        match = re.fullmatch(r"\s*(-?\d+)(?:-(-?\d+)(?:x(\d+))?)?\s*", part)
        if not match:
            raise ValueError(f"{part.strip()!r} is not a frame or range (e.g. 1001,1100 or 1001-1100x10)")
        first, last, step = int(match[1]), int(match[2] or match[1]), int(match[3] or 1)
        numbers += list(range(first, last + 1, max(step, 1)))
    return numbers


def default_learned(plate: str) -> str:
    return os.path.dirname(os.path.abspath(plate)) + "_learned.safetensors"


def learn_command(config: dict, op_name: str, values: dict, plate: str, keys: str, key_frames: list[int]) -> list[str]:
    """`bake-seq learn PLATE --key F=FILE ... -o LEARNED` for a node whose 'keys' input is a Read
    of the corrected frames (``keys`` its file pattern)."""
    args = [*config["command"], "learn", plate, "--op", op_name, "-o", values.get("learned") or default_learned(plate),
            "--overwrite"]
    for number in key_frames:
        args += ["--key", f"{number}={frame_file(keys, number)}"]
    if values.get("input_colorspace"):
        args += ["--input-colorspace", values["input_colorspace"]]
    return args


def parse_progress(line: str) -> tuple[int, int] | None:
    """(frames done, frames to do) from a `bake-seq render` log line, else None."""
    match = PROGRESS.search(line)
    return (int(match[2]), int(match[3])) if match else None


NUKE_PYTHON_VARIABLES = ("PYTHONHOME", "PYTHONPATH", "PYTHONSTARTUP", "PYTHONNOUSERSITE")


def outside_env() -> dict:
    """The environment for bake-seq's own Python: Nuke's Python variables removed (Nuke's
    PYTHONHOME can stop another Python from starting at all; its PYTHONPATH shadows packages)."""
    return {k: v for k, v in os.environ.items() if k not in NUKE_PYTHON_VARIABLES}


def run_command(command: list[str], on_progress=None, cancelled=None) -> tuple[int, list[str]]:
    """Run bake-seq, reporting progress; stop it when ``cancelled()`` turns true.
    Returns (exit code, last lines of its output)."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               bufsize=1, env=outside_env())
    tail: list[str] = []
    for line in process.stdout:
        tail = (tail + [line.rstrip()])[-20:]
        progress = parse_progress(line)
        if progress and on_progress:
            on_progress(*progress)
        if cancelled and cancelled():
            process.terminate()
            break
    return process.wait(), tail


def upstream_read(node, index: int = 0):
    """The first Read above ``node`` on input ``index`` (through any number of other nodes)."""
    current = node.input(index)
    while current is not None and current.Class() != "Read":
        current = current.input(0)
    if current is None:
        which = "input 0" if index == 0 else "the 'keys' input (the corrected frames)"
        raise ValueError(f"{node.name()}: connect a Read (through any nodes) to {which}")
    return current


def frame_bounds(frames: str) -> tuple[int, int]:
    """First and last frame of a range like 1001-1100x2 or 1,5,10-20 (for the result's Read)."""
    numbers = []
    for part in frames.split(","):
        match = re.match(r"\s*(-?\d+)(?:-(-?\d+))?", part)
        if match:
            numbers += [int(n) for n in match.groups() if n is not None]
    if not numbers:
        raise ValueError(f"no frames in {frames!r}")
    return min(numbers), max(numbers)


def read_plate(read) -> tuple[str, str]:
    """(file pattern, frame range) of a Read node, its path as Nuke reads it: expressions
    evaluated (nuke.filename keeps the frame tokens), %V/%v the first view, a relative path
    against the script's project directory."""
    first, last = int(read["first"].value()), int(read["last"].value())
    return evaluated_path(read), f"{first}-{last}"


def evaluated_path(read) -> str:
    try:
        import nuke
    except ImportError:  # outside Nuke (tests of the pure helpers): the knob as typed
        return read["file"].value()
    path = nuke.filename(read) or read["file"].value()
    views = nuke.views() if hasattr(nuke, "views") else []
    if views:
        path = path.replace("%V", views[0]).replace("%v", views[0][:1])
    if not os.path.isabs(path):
        root = nuke.root()
        base = root["project_directory"].evaluate() if root.knob("project_directory") is not None else ""
        base = base or os.path.dirname(root.name())
        path = os.path.normpath(os.path.join(base, path))
    return path


# ---- Nuke glue: everything below needs the nuke module ------------------------------------


def add_menu(menu, config: dict | None = None) -> None:
    """Nodes > bake-seq > one entry per operator."""
    config = config or load_config()
    submenu = menu.addMenu("bake-seq")
    for op in config["operators"]:
        submenu.addCommand(op["label"] or op["name"], f"bake_nuke.create_node({op['name']!r})")


def create_node(name: str, config: dict | None = None):
    """A Group that passes its input through, with the operator's knobs and Render/Submit buttons."""
    import nuke

    op = operator(config or load_config(), name)
    node = nuke.createNode("Group")
    node.setName(name.title().replace("_", ""))
    with node:
        nuke.nodes.Output().setInput(0, nuke.nodes.Input())
        if name in LEARN_OPS:  # input 1: a Read of the artist's corrected frames
            nuke.nodes.Input(name="keys")
    node.addKnob(nuke.Tab_Knob("bake_seq", "bake-seq"))
    node.addKnob(_knob({"class": "String_Knob", "name": OP_KNOB, "label": "operator", "default": name,
                        "tooltip": "bake-seq operator", "invisible": True}))
    for spec in knob_specs(op):
        node.addKnob(_knob(spec))
    node.addKnob(nuke.Text_Knob("render_divider", ""))
    for spec in RENDER_KNOBS:
        node.addKnob(_knob(spec))
    node.addKnob(nuke.PyScript_Knob("render", "Render", "import bake_nuke; bake_nuke.render(nuke.thisNode())"))
    if name in LEARN_OPS:
        node.addKnob(nuke.Text_Knob("learn_divider", ""))
        for spec in LEARN_KNOBS:
            node.addKnob(_knob(spec))
        node.addKnob(nuke.PyScript_Knob("learn", "Learn from keys", "import bake_nuke; bake_nuke.learn(nuke.thisNode())"))
    node.addKnob(nuke.Text_Knob("farm_divider", ""))
    for spec in FARM_KNOBS:
        node.addKnob(_knob(spec))
    node.addKnob(nuke.PyScript_Knob("submit", "Submit to farm", "import bake_nuke; bake_nuke.submit(nuke.thisNode())"))
    return node


def _knob(spec: dict):
    import nuke

    cls = getattr(nuke, spec["class"])
    knob = cls(spec["name"], spec["label"], spec["values"]) if "values" in spec else cls(spec["name"], spec["label"])
    knob.setTooltip(spec["tooltip"])
    if "range" in spec:
        knob.setRange(*spec["range"])
    if spec.get("default") not in (None, ""):
        knob.setValue(spec["default"])
    if spec.get("invisible"):
        knob.setVisible(False)
    return knob


def node_values(node, op: dict) -> dict:
    names = [k["name"] for k in op["knobs"]] + [s["name"] for s in RENDER_KNOBS + LEARN_KNOBS + FARM_KNOBS]
    return {name: node[name].value() for name in names if node.knob(name) is not None}


def _job(node, config: dict | None = None):
    config = config or load_config()
    op = operator(config, node[OP_KNOB].value())
    values = node_values(node, op)
    plate, frames = read_plate(upstream_read(node))
    return config, op, values, plate, frames


def render(node, background: bool = True, config: dict | None = None) -> None:
    """Render the upstream Read's frames with `bake-seq render`; then add a Read of the result."""
    import nuke

    config, op, values, plate, frames = _job(node, config)
    command = render_command(config, op, values, plate, frames)
    output = values.get("output") or default_output(plate)
    task = nuke.ProgressTask(f"bake-seq {op['name']}")

    def progress(done: int, total: int) -> None:
        task.setProgress(int(100 * done / total))
        task.setMessage(f"frame {done} of {total}")

    def work():
        code, tail = run_command(command, progress, task.isCancelled)
        if not task.isCancelled():  # frames written so far stay; Render again resumes
            nuke.executeInMainThread(_finished, args=(node, code, tail, output, values.get("frames") or frames, op))

    if background:
        threading.Thread(target=work, name="bake-seq render", daemon=True).start()
    else:
        work()


def in_knob_words(text: str, op: dict) -> str:
    """bake-seq's messages name command-line flags; on the node they name the knobs the user set."""
    words = {knob["flag"]: f"the '{knob['name'].replace('_', ' ')}' knob" for knob in op["knobs"]}
    words.update({"--" + spec["name"].replace("_", "-"): f"the '{spec['label']}' knob" for spec in RENDER_KNOBS})
    for flag, said in sorted(words.items(), key=lambda item: -len(item[0])):
        text = re.sub(re.escape(flag) + r"(?![\w-])", said, text)
    return text


def _finished(node, code: int, tail: list[str], output: str, frames: str, op: dict | None = None) -> None:
    import nuke

    if code != 0:
        text = "\n".join(tail[-5:])
        nuke.message(f"bake-seq render failed (exit {code}):\n" + (in_knob_words(text, op) if op else text))
        return
    first, last = frame_bounds(frames)
    read = nuke.nodes.Read(file=output, first=first, last=last)
    read.setXYpos(node.xpos() + 120, node.ypos())


def learn(node, background: bool = True, config: dict | None = None) -> None:
    """Learn the shot's correction from the 'keys' input's corrected frames (`bake-seq learn`);
    on success the node's checkpoint knob takes the learned file, so Render applies it."""
    import nuke

    config, op, values, plate, _ = _job(node, config)
    keys, keys_range = read_plate(upstream_read(node, 1))
    command = learn_command(config, op["name"], values, plate, keys, frame_list(values.get("key_frames") or keys_range))
    learned = values.get("learned") or default_learned(plate)
    task = nuke.ProgressTask(f"bake-seq learn ({op['name']})")

    def work():
        task.setMessage("learning the shot's correction from the keys")
        code, tail = run_command(command, None, task.isCancelled)
        if not task.isCancelled():
            nuke.executeInMainThread(_learned, args=(node, code, tail, learned, op))

    if background:
        threading.Thread(target=work, name="bake-seq learn", daemon=True).start()
    else:
        work()


def _learned(node, code: int, tail: list[str], learned: str, op: dict) -> None:
    import nuke

    if code != 0:
        nuke.message(f"bake-seq learn failed (exit {code}):\n" + in_knob_words("\n".join(tail[-5:]), op))
        return
    node[LEARN_OPS[op["name"]]].setValue(learned)
    nuke.message("\n".join(tail[-6:]))


def submit(node, config: dict | None = None, background: bool = True):
    """Hand the job to the farm submitter (`bake-seq submit`) in a thread (it reads the plate to
    estimate the shot's correction: seconds the UI must not freeze for); the answer comes as a
    message on the main thread. Returns the thread (None with background=False)."""
    import nuke

    job = _job(node, config)
    command = submit_command(*job)

    def work():
        result = subprocess.run(command, capture_output=True, text=True, env=outside_env())
        text = (result.stdout + result.stderr).strip()
        if result.returncode != 0:
            text = in_knob_words(text, job[1])
        head = "submitted:\n" if result.returncode == 0 else f"bake-seq submit failed (exit {result.returncode}):\n"
        nuke.executeInMainThread(nuke.message, args=(head + "\n".join(text.splitlines()[-8:]),))

    if not background:
        work()
        return None
    thread = threading.Thread(target=work, name="bake-seq submit", daemon=True)
    thread.start()
    return thread
