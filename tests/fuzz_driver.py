"""Seeded fuzzing of bake-seq's inputs, run in its own process by tests/test_fuzz.py (so its peak
memory is its own): valid PNG, DPX and EXR frames, a checkpoint, a settings file, a grade record,
a LUT, its sidecar and a frame's lock file are mutated (bytes flipped in the header, truncated,
garbage appended, a size field blown up; records and sidecars also structurally: nested deep,
a value swapped for a hostile one, a key repeated, a number thousands of digits long; LUTs with
NaN/Inf rows or an absurd size) and handed to `bake-seq render`. Prints one JSON line per case
and a summary.

    python -m tests.fuzz_driver WORK_DIR CASES SEED
"""
from __future__ import annotations

import hashlib
import json
import re
import resource
import shutil
import sys
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from bake_node.cli import cli
from bake_seq.sequences.plate import write_plate
from tests.bake_node.test_global_model import make_global_checkpoint
from tests.conftest import make_checkpoint

KINDS = ("png", "dpx", "exr", "safetensors", "yaml", "grade", "lut", "sidecar", "lock")
SRGB = "sRGB Encoded Rec.709 (sRGB)"
DOCUMENTED = {0, 2, 3, 4, 5, 6, 10}  # README's exit codes a user can meet (1 = a bug)


def seeds(work: Path) -> dict[str, Path]:
    """One valid file of each kind."""
    work.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    rgb = rng.random((24, 32, 3)).astype(np.float32)
    made = {}
    for ext in ("png", "dpx", "exr"):
        path = work / f"seed.{ext}"
        write_plate(str(path), rgb, channel_names=["R", "G", "B"], metadata={}, colorspace=None, frame=1)
        made[ext] = path
    made["safetensors"] = Path(make_checkpoint(work / "seed.safetensors"))
    (work / "seed.yaml").write_text("op: bake\nsettings:\n  range_policy: clip\n  window: 5\n")
    made["yaml"] = work / "seed.yaml"
    # a correction of the global model over a 2-frame plate: its record (the LUT's sidecar) and a 17^3 LUT
    made["global"] = Path(make_global_checkpoint(work / "global.safetensors"))
    for n in (1, 2):
        shutil.copy(made["png"], work / f"p.000{n}.png")
    result = CliRunner().invoke(cli, ["grade", str(work / "p.####.png"), "-o", str(work / "seed.cube"), "--size", "17",
                                      "--checkpoint", str(made["global"]), "-i", SRGB])
    assert result.exit_code == 0, result.output
    made["lut"], made["sidecar"] = work / "seed.cube", work / "seed.cube.json"
    made["grade"] = made["sidecar"]  # the sidecar is the grade record
    (work / "seed.lock").write_text("nodeA 4242\n")  # a crashed farm node's lock
    made["lock"] = work / "seed.lock"
    return made


def mutate(data: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    how = rng.integers(0, 4)
    buf = bytearray(data)
    if how == 0:  # flip bytes in the header
        for _ in range(int(rng.integers(1, 8))):
            at = int(rng.integers(0, min(len(buf), 512)))
            buf[at] = int(rng.integers(0, 256))
        return bytes(buf), "header bytes"
    if how == 1:
        return bytes(buf[:int(rng.integers(0, len(buf)))]), "truncated"
    if how == 2:
        return bytes(buf) + rng.bytes(int(rng.integers(1, 4096))), "garbage appended"
    # a 32-bit field set huge (sizes, offsets, counts)
    at = int(rng.integers(0, max(1, min(len(buf), 1024) - 4)))
    buf[at:at + 4] = bytes([0x7F, 0xFF, 0xFF, 0xF0])
    return bytes(buf), "field blown up"


HOSTILE = [1e39, 200.0, -1e308, "0.5", True, None, [], {"a": 1}, float("nan"), 10 ** 120, "x" * 500]


def mutate_json(data: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    """A grade record or sidecar changed in its structure, not its bytes."""
    doc, text = json.loads(data), data.decode()
    how = int(rng.integers(0, 5))
    if how == 0:
        depth = int(rng.choice([31, 40, 5000]))
        return ("[" * depth + text + "]" * depth).encode(), f"nested {depth} deep"
    if how == 1:
        key = str(rng.choice(sorted(doc)))
        doc[key] = HOSTILE[int(rng.integers(0, len(HOSTILE)))]
        return json.dumps(doc).encode(), f"{key} swapped"
    if how == 2:
        row = doc["parameters"][0]
        row[int(rng.integers(0, len(row)))] = HOSTILE[int(rng.integers(0, len(HOSTILE)))]
        return json.dumps(doc).encode(), "parameter swapped"
    if how == 3:
        key = str(rng.choice(sorted(doc)))
        return text.replace("{", "{" + json.dumps(key) + ": 1, ", 1).encode(), f"{key} repeated"
    digits = int(rng.choice([3001, 5001]))
    return re.sub(r"\d+", "9" * digits, text, count=1).encode(), f"{digits}-digit number"


def mutate_lut(data: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    lines = data.decode().splitlines()
    how = int(rng.integers(0, 2))
    if how == 0:
        at = int(rng.integers(len(lines) - 100, len(lines)))
        lines[at] = str(rng.choice(["nan nan nan", "inf 0 0", "1e39 0 0", "0 0", "a b c"]))
        return ("\n".join(lines) + "\n").encode(), "row replaced"
    size = str(rng.choice(["0", "1", "129", "99999999", "-3", "1e9"]))
    return re.sub(r"LUT_3D_SIZE \d+", f"LUT_3D_SIZE {size}", data.decode()).encode(), f"size {size}"


def digest(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            h.update(path.name.encode() + path.read_bytes())
    return h.hexdigest()


def run_case(work: Path, made: dict, index: int, rng: np.random.Generator) -> dict:
    kind = KINDS[index % len(KINDS)]
    seed = made[kind].read_bytes()
    structural = {"grade": mutate_json, "sidecar": mutate_json, "lut": mutate_lut}.get(kind)
    data, how = structural(seed, rng) if structural and rng.integers(0, 2) else mutate(seed, rng)
    case = work / f"case{index}"
    plate_dir = case / "plate"
    plate_dir.mkdir(parents=True)
    args = ["render"]
    if kind in ("png", "dpx", "exr"):
        (plate_dir / f"p.0001.{kind}").write_bytes(data)
        shutil.copy(made[kind], plate_dir / f"p.0002.{kind}")
        args += [str(plate_dir / f"p.####.{kind}"), "--checkpoint", str(made["safetensors"]), "-i",
                 "sRGB Encoded Rec.709 (sRGB)"]
    else:
        for n in (1, 2):
            shutil.copy(made["png"], plate_dir / f"p.000{n}.png")
        args += [str(plate_dir / "p.####.png")]
        if kind in ("safetensors", "yaml"):
            (plate_dir / f"input.{kind}").write_bytes(data)
            args += (["--checkpoint", str(plate_dir / "input.safetensors")] if kind == "safetensors"
                     else ["--config", str(plate_dir / "input.yaml"), "--checkpoint", str(made["safetensors"])])
        elif kind == "grade":
            (plate_dir / "input.json").write_bytes(data)
            args += ["--grade", str(plate_dir / "input.json"), "--checkpoint", str(made["global"]), "-i", SRGB]
        elif kind in ("lut", "sidecar"):
            (plate_dir / "input.cube").write_bytes(data if kind == "lut" else made["lut"].read_bytes())
            (plate_dir / "input.cube.json").write_bytes(data if kind == "sidecar" else made["sidecar"].read_bytes())
            args += ["--grade", str(plate_dir / "input.cube"), "--checkpoint", str(made["global"]), "-i", SRGB]
        else:  # a lock left in the output by a crashed render: taken over after the lease, exit 0
            (case / "out" / ".bake-seq").mkdir(parents=True)
            (case / "out" / ".bake-seq" / "p.0001.png.lock").write_bytes(data)
            args += ["--checkpoint", str(made["safetensors"]), "-i", SRGB]
    args += ["-o", str(case / "out"), "-q"]
    before = digest(plate_dir)
    result = CliRunner().invoke(cli, args)
    stderr = result.stderr.strip().splitlines()
    frames_out = len(list((case / "out").glob("*.png")))
    shutil.rmtree(case / "out", ignore_errors=True)
    return {"case": index, "kind": kind, "mutation": how, "exit": result.exit_code,
            "stderr_lines": len(stderr), "first_line": stderr[0][:200] if stderr else "",
            "traceback": "Traceback" in result.output or result.exit_code == 1,
            "inputs_unchanged": digest(plate_dir) == before, "frames_out": frames_out,
            "exception": "" if result.exit_code != 1 else repr(result.exception)[:300]}


def main() -> None:
    work, cases, seed = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    made = seeds(work / "seeds")
    rng = np.random.default_rng(seed)
    for index in range(cases):
        row = run_case(work, made, index, rng)
        print(json.dumps(row), flush=True)
        shutil.rmtree(work / f"case{index}", ignore_errors=True)
    print(json.dumps({"summary": True, "cases": cases, "peak_rss_mib": round(peak_rss_mib())}), flush=True)


def peak_rss_mib() -> float:
    """This process's own peak RSS (VmHWM). Not ru_maxrss: Linux carries the high-water mark of
    the process we were forked from (a big pytest) across exec into it."""
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


if __name__ == "__main__":
    main()
