"""The fast tier that executes the shell library: real bash in a temp folder, with stub ``docker``, ``curl``
and ``wget`` on PATH that record their arguments (and any secret on their stdin) and answer from scripted
output captured from the real tools (``captured/``). No root, SSH or Docker; the end-to-end tier keeps
running the real ones."""
from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tasks.core import inventory
from tasks.core.programs.protocol import Program, Reader, Result, assemble, assign
from tasks.core.ui import StepDisplay

HERE = Path(__file__).resolve().parent
CAPTURED = HERE / "captured"
REGISTRY = "10.200.0.1:5000"
TOKEN = "ghp_" + "T0k3n" * 7 + "x"


@dataclass
class Call:
    argv: list[str]
    stdin: str | None
    env: dict[str, str]   # the *TAG variables it was called with (pins given to compose)


@dataclass
class Run:
    code: int
    result: Result
    stdout: str
    stderr: str

    @property
    def error(self) -> str:
        return "; ".join(self.result.errors)


class Lab:
    """A host root in a temp folder, stub tools on PATH, and a way to run programs or library snippets."""

    def __init__(self, path: Path):
        self.path = path
        self.root = path / "root"
        self.bin, self.out, self.calls_dir = path / "bin", path / "out", path / "calls"
        for d in (self.root, self.bin, self.out, self.calls_dir, path / "home"):
            d.mkdir(parents=True)
        for tool in ("docker", "curl", "wget"):
            (self.bin / tool).symlink_to(HERE / "stub")
        (self.bin / "sleep").symlink_to("/bin/true")  # retry loops run at full speed here
        (path / "rules").write_text("")
        (self.root / "hosts.yml").write_text(
            f"registry: {{server: '{REGISTRY}', username: edumigsoft}}\n"
            "systems:\n  ems_system:\n    stacks:\n"
            "      infra: {compose: repo/infra/docker-compose.yml}\n"
            "      ems: {compose: repo/ems/docker-compose.yml, image: edumigsoft/ems_server, "
            "health: 'http://127.0.0.1:8080/health', wait: 5}\n"
            "      sms: {compose: repo/sms/docker-compose.yml, image: edumigsoft/sms_server, wait: 5}\n"
            f"hosts:\n  lab: {{address: 127.0.0.1, root: '{self.root}', systems: [ems_system]}}\n")
        self.target = inventory.load(self.root / "hosts.yml").host("lab").targets()[0]
        for stack in self.target.system.stacks:
            Path(self.target.compose(stack)).parent.mkdir(parents=True)
            Path(self.target.compose(stack)).write_text("services: {}\n")
        self.secrets = Path(self.target.secrets)
        self.secrets.parent.mkdir(mode=0o700)
        self.secrets.write_text(f"export GITHUB_TOKEN={TOKEN}\n")
        self.secrets.chmod(0o600)
        self.state = Path(self.target.state_dir)

    def answer(self, tool: str, pattern: str, output: str = "", code: int = 0, captured: str | None = None,
               once: bool = False, stderr: bool = False) -> None:
        """``tool`` called with arguments matching the glob ``pattern`` prints ``output`` (or a captured file)
        on stdout (or ``stderr``) and exits ``code`` (``once``: only the first time). Later rules win."""
        name = f"{len(list(self.out.iterdir()))}.{'err' if stderr else 'out'}"
        (self.out / name).write_text((CAPTURED / captured).read_text() if captured else output)
        with open(self.path / "rules", "a") as f:
            f.write(f"{tool}\t{pattern}\t{code}\t{name}\t{int(once)}\n")

    def calls(self, tool: str | None = None) -> list[Call]:
        out = []
        for argv in sorted(self.calls_dir.glob("*.argv"), key=lambda p: p.name):
            args = argv.read_bytes().decode().split("\0")[:-1]
            stdin, env = argv.with_suffix(".stdin"), argv.with_suffix(".env")
            tags = dict(line.split("=", 1) for line in env.read_text().splitlines()) if env.exists() else {}
            if tool is None or args[0] == tool:
                out.append(Call(args, stdin.read_text() if stdin.exists() else None, tags))
        return out

    def commands(self, tool: str) -> list[str]:
        return [" ".join(c.argv[1:]) for c in self.calls(tool)]

    def run(self, program: Program | str, stdin_tail: str = "", env: dict | None = None, ulimit: str = "") -> Run:
        """Run a program (or an assembled text) under bash -s as the host would, and read its lines."""
        text = program.text if isinstance(program, Program) else program
        cmd = ["bash", "-c", f"ulimit {ulimit}; exec bash -s"] if ulimit else ["bash", "-s"]
        proc = subprocess.run(cmd, input=text + stdin_tail, capture_output=True, text=True, timeout=60, cwd=self.path,
                              env=self.env(env))
        result = Result(code=proc.returncode)
        reader = Reader(result, StepDisplay("lab", quiet=True))
        for line in proc.stdout.splitlines():
            reader.line(line)
        return Run(proc.returncode, result, proc.stdout, proc.stderr)

    def hang_up(self, program: Program, after_lines: int) -> int:
        """Run ``program`` and close its stdout after ``after_lines`` lines, as a dropped SSH connection does;
        its exit code once it has finished on its own."""
        proc = subprocess.Popen(["bash", "-s"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True, cwd=self.path, env=self.env())
        proc.stdin.write(program.text)
        proc.stdin.close()
        for _ in range(after_lines):
            proc.stdout.readline()
        proc.stdout.close()
        return proc.wait(timeout=60)

    def env(self, extra: dict | None = None) -> dict:
        return {"PATH": f"{self.bin}:/usr/bin:/bin", "HOME": str(self.path / "home"), "LAB_DIR": str(self.path),
                "LC_ALL": "C", **(extra or {})}

    def snippet(self, body: str, calls: set[str], head: dict | None = None) -> Run:
        """Library functions ``calls`` (and what they need) plus a bash ``body`` that uses them."""
        head = {"STATE": str(self.state), "SECRETS": str(self.secrets), **(head or {})}
        return self.run(assemble("snippet", [assign(k, v) for k, v in head.items()], calls, [body]))


@pytest.fixture
def lab(tmp_path) -> Lab:
    return Lab(tmp_path)

