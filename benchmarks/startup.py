"""How long does the command line take to start?

Times ``kdistill --help``, ``kdistill --version`` and ``kdistill validate`` of a tiny experiment
file (an MLP on the built-in digits, one dry step per model), each in a fresh interpreter
(``python -m kdistill``, so the source tree measured is the one on ``--src``), interleaved
(help, version, validate, validate, version, help, ...) so that machine load drifts hit all
alike; reports the median and the range of the wall times. Target: ``--help`` under 1 s.

``import torch`` alone is timed the same way, as the floor of every command that trains.

    python benchmarks/startup.py [--repeats 7] [--src src] [--label after] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EXPERIMENT = """\
name: startup
data:
  builtin: {name: digits}
teacher: {model: mlp, options: {hidden: [16]}}
student: {model: mlp, options: {hidden: [8]}}
students:
  - name: student alone
    methods: [{name: ce, weight: 1.0}]
  - name: student kd
    methods: [{name: ce, weight: 0.5}, {name: kd, weight: 0.5}]
train: {epochs: 1}
"""


def timed(argv: list[str], src: Path, cwd: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(src)}
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, *argv], cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {done.returncode}: {done.stderr[-2000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--src", default=str(Path(__file__).resolve().parent.parent / "src"))
    parser.add_argument("--label", default="current", help="name of this measurement in the output files")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    args = parser.parse_args()
    src = Path(args.src).resolve()
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        (cwd / "tiny.yaml").write_text(EXPERIMENT)
        commands = {"kdistill --help": ["-m", "kdistill", "--help"],
                    "kdistill --version": ["-m", "kdistill", "--version"],
                    "kdistill validate tiny.yaml": ["-m", "kdistill", "validate", "tiny.yaml"],
                    "python -c 'import torch'": ["-c", "import torch"]}
        has_version = subprocess.run([sys.executable, "-m", "kdistill", "--version"], cwd=cwd, capture_output=True,
                                     env={**os.environ, "PYTHONPATH": str(src)}).returncode == 0
        if not has_version:  # the code before --version existed
            commands.pop("kdistill --version")
        names = list(commands)
        times: dict[str, list[float]] = {n: [] for n in names}
        for name in names:  # once untimed: the first start reads every file from disk
            timed(commands[name], src, cwd)
        for r in range(args.repeats):
            for name in names if r % 2 == 0 else names[::-1]:
                times[name].append(timed(commands[name], src, cwd))
    rows = {n: {"median_s": statistics.median(t), "min_s": min(t), "max_s": max(t), "runs": len(t)}
            for n, t in times.items()}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"startup-{args.label}.json").write_text(json.dumps({"src": str(src), "rows": rows}, indent=2) + "\n")
    lines = [f"# Startup ({args.label}: {src}), wall seconds over {args.repeats} runs", "",
             "| command | median s | min s | max s |", "|---|---|---|---|"]
    lines += [f"| `{n}` | {r['median_s']:.2f} | {r['min_s']:.2f} | {r['max_s']:.2f} |" for n, r in rows.items()]
    text = "\n".join(lines) + "\n"
    (out / f"startup-{args.label}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
