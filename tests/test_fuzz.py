"""Issue 17's fuzz test, extended by issue 24: 300 seeded mutations (header bytes, truncation,
appended garbage, a size field blown up; structural ones for JSON records and LUTs) of PNG, DPX,
EXR, safetensors and YAML inputs, grade records, LUTs, LUT sidecars and frame locks through
`bake-seq render`, in a process of their own. Every case: a documented exit code, one line on
stderr when it fails, no traceback, inputs unchanged, a leftover lock never costing a frame; the
whole run under a stated peak memory (1.5 GiB of its own VmHWM; measured ~750 MiB)."""
import json
import subprocess
import sys

from tests.plugins.farm.conftest import REPO, subprocess_env

DOCUMENTED = {0, 2, 3, 4, 5, 6, 10}
PEAK_RSS_MIB = 1536


def test_fuzzed_inputs_fail_cleanly(tmp_path):
    # Frames claiming up to the 100 MP limit are legal and cost their pixels (17 MiB/MP to read);
    # the seeds are 24 x 32, so a 4 MP limit makes every blown-up size field a refusal here and the
    # memory bound a property of the code, not of where a mutation happens to land.
    env = {**subprocess_env(), "BAKE_SEQ_MAX_MEGAPIXELS": "4", "BAKE_SEQ_LOCK_LEASE_S": "0.2"}
    run = subprocess.run([sys.executable, "-m", "tests.fuzz_driver", str(tmp_path), "300", "2026"],
                         capture_output=True, text=True, cwd=REPO, env=env, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    rows = [json.loads(line) for line in run.stdout.splitlines()]
    summary = rows.pop()
    assert summary["cases"] == len(rows) == 300
    bad = [r for r in rows if r["exit"] not in DOCUMENTED or r["traceback"] or not r["inputs_unchanged"]
           or (r["exit"] != 0 and r["stderr_lines"] != 1)]
    assert not bad, bad[:5]
    assert {r["kind"] for r in rows if r["exit"] != 0} == {"png", "dpx", "exr", "safetensors", "yaml", "grade",
                                                           "lut", "sidecar"}
    locks = [r for r in rows if r["kind"] == "lock"]  # whatever a lock holds, every frame gets rendered
    assert locks and all(r["exit"] == 0 and r["frames_out"] == 2 for r in locks), locks[:3]
    assert summary["peak_rss_mib"] < PEAK_RSS_MIB
