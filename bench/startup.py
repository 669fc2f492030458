"""Startup: what the operator waits for before anything is sent to a host.

Times, as whole processes, interleaved over several rounds (median of each):
  - ``fab-vps --list`` (the installed command; ``fab --list`` adds Fabric's own program on top),
  - the Python side of a single-host deploy: import the tasks, read and validate hosts.yml, build the deploy
    program's exact text (what ``deploy --dry-run --offline`` prints), no SSH,
against two floors measured in the same run: ``python -c pass`` (the interpreter) and ``python -c "import
fabric"`` (what any Fabric tool pays: Fabric, Invoke and Paramiko). Prints each median, and the tool's
milliseconds over each floor.

    .venv/bin/python bench/startup.py [--rounds 15]
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
BUILD = ("from tasks import main; from tasks.core import inventory; "
         "from tasks.core.programs.declare import Intent; from tasks.core.programs.deploy import deploy_program; "
         "t = inventory.load('hosts.yml').host('vps1').targets()[0]; "
         "i = Intent('deploy', 'r1', 'v1.4.3', 'bench', 'laptop', tags={'ems': 'v1.4.3', 'sms': 'v1.4.3'}); "
         "assert deploy_program(t, list(t.system.stacks), i).text")
COMMANDS = {
    "python -c pass (floor)": [sys.executable, "-c", "pass"],
    "import fabric (floor)": [sys.executable, "-c", "import fabric"],
    "fab-vps --list": [str(BIN / "fab-vps"), "--list"],
    "deploy, Python side": [sys.executable, "-c", BUILD],
}


def once(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    rounds = parser.parse_args().rounds
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for argv in COMMANDS.values():
        once(argv)   # warm the page cache and .pyc files
    for _ in range(rounds):
        for name, argv in COMMANDS.items():
            times[name].append(once(argv))
    median = {name: statistics.median(t) for name, t in times.items()}
    python, fabric = median["python -c pass (floor)"], median["import fabric (floor)"]
    print(f"startup, median of {rounds} interleaved rounds")
    for name, m in median.items():
        extra = "" if "floor" in name else \
            f"   +{(m - python) * 1000:.0f} ms over python, +{(m - fabric) * 1000:.0f} ms over import fabric"
        print(f"  {name:26} {m:.3f} s{extra}")


if __name__ == "__main__":
    main()
