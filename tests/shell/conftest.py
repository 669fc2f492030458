"""The fast tier that executes the shell library: real bash in a temp folder, with stub ``docker``, ``curl``
and ``wget`` on PATH that record their arguments (and any secret on their stdin) and answer from scripted
output captured from the real tools (``captured/``). No root, SSH or Docker; the end-to-end tier keeps
running the real ones."""
from __future__ import annotations

import hashlib
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
INFRA_DIGEST = "sha256:" + "4" * 64   # the digest the healthy host's infra stack runs
TOKEN = "ghp_" + "T0k3n" * 7 + "x"


@dataclass
class Call:
    argv: list[str]
    stdin: str | None
    env: dict[str, str]   # the *TAG variables it was called with (pins given to compose); DOCKER_CONFIG, its mode


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
        self.healthy_host()

    def healthy_host(self, target=None) -> None:
        """The host every test starts from, scripted call by call (a test's own rules come later and win): the
        registry accepts the login, each stack runs one healthy container (``container(stack)``) that compose
        brings up without a word, health URLs answer, nothing was started by hand, fab setup made the networks
        and the volumes exist. Its containers run another configuration than the one a deploy records (their
        config-hash differs), so a deploy brings every stack up; the tests of ``unchanged`` script their own."""
        self.answer("docker", "login *", "Login Succeeded\n")
        self.answer("docker", "info*")
        self.answer("curl", "--globoff -fsS -k * --max-time 5 http*")
        target = target or self.target
        self.answer("docker", "inspect --format {{index .Config.Labels*compose.project*{{.Config.Image}} *")   # (nothing
        # to record of a test's own containers)
        running, survey, recorded = [], [], []
        for stack in target.system.stacks:
            project, cid = target.project(stack), self.container(stack.name)
            name = f"{project}-{stack.name}-1"
            self.answer("docker", f"compose -p {project} -f * config", f"name: {project}\nservices: {{}}\n")
            self.answer("docker", f"compose -p {project} -f * up -d *")
            self.answer("docker", f"compose -p {project} -f * stop")
            self.answer("docker", f"ps -aq --filter label=com.docker.compose.project={project} *", cid + "\n")
            self.answer("docker", f"inspect --format {{{{.Name}}}} {{{{.State.Status}}}} * {cid}",
                        f"/{name} running healthy 0 unless-stopped\n")
            self.answer("docker", f"inspect --format {{{{index .Config.Labels*config-hash*}}}} {cid}",
                        f"{stack.name} {'0' * 64}\n")   # what record_up reads
            self.answer("docker", f"inspect --format {{{{index .Config.Labels*config-hash*.State.Status* {cid}",
                        f"{stack.name} {'e' * 64} running healthy sha256:{'1' * 64} {stack.name}:old\n")
            self.answer("docker", f"image inspect --format {{{{.Id}}}} {stack.name}:old", f"sha256:{'1' * 64}\n")
            image = f"{stack.name}:old@sha256:{'3' * 64}" if stack.apps else f"{stack.name}:stable"   # (a pin has
            recorded.append(f"{project} {stack.name} {image} sha256:{'1' * 64}")                   # its digest)
            running.append(f"{project} {stack.name} Up 5 seconds (healthy)")
            survey.append(f"{name}|{project}|{Path(target.compose(stack)).parent}|{stack.name}|running")
        ids = [self.container(s.name) for s in target.system.stacks]   # what a good release records of them:
        self.answer("docker", "ps -aq --filter label=com.docker.compose.project --filter label=com.docker.compose.oneoff=False",
                    "".join(i + "\n" for i in ids))
        self.answer("docker", "inspect --format {{index .Config.Labels*compose.project*{{.Config.Image}} * " + " ".join(ids),
                    "".join(r + "\n" for r in recorded))
        self.answer("docker", "image inspect --format {{.Id}} * sha256:" + "1" * 64,
                    f"sha256:{'1' * 64} infra@{INFRA_DIGEST}\n")   # the services that pin nothing: by digest
        self.answer("docker", "ps --filter label=com.docker.compose.project --format *", "\n".join(running) + "\n")
        self.answer("docker", "ps -a --format *", "\n".join(survey) + "\n")
        self.answer("docker", "compose -f * config --format json", '{"name": "repo", "services": {}}\n')   # setup
        self.answer("docker", "network inspect *", '[{"Name": "ems_net", "Driver": "bridge"}]\n')   # fab setup ran
        self.answer("docker", "volume inspect *", '[{"Name": "v", "Driver": "local"}]\n')   # the stacks ran before

    @staticmethod
    def container(stack: str) -> str:
        """The id of the container the healthy host runs for ``stack``."""
        return hashlib.sha256(stack.encode()).hexdigest()[:12]

    def allow(self, tool: str, pattern: str) -> None:
        """Calls of ``tool`` matching ``pattern`` may happen and answer nothing (exit 0)."""
        self.answer(tool, pattern)

    def unscripted(self) -> list[str]:
        """The calls no rule answered (the stub failed them)."""
        f = self.path / "unscripted"
        return sorted(set(f.read_text().splitlines())) if f.exists() else []

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
                out.append(Call(args, stdin.read_bytes().decode(errors="replace") if stdin.exists() else None, tags))
        return out

    def commands(self, tool: str) -> list[str]:
        return [" ".join(c.argv[1:]) for c in self.calls(tool)]

    def run(self, program: Program | str, stdin_tail: str = "", env: dict | None = None, ulimit: str = "") -> Run:
        """Run a program (or an assembled text) under bash -s as the host would, and read its lines; what follows
        it on stdin is its tail (``Program.given``), then ``stdin_tail`` (raw: a test's malformed input)."""
        text = program.text + program.tail if isinstance(program, Program) else program
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


def finished(lab: Lab) -> None:
    """The end of every test with a lab: a call nobody scripted fails it, even where the program carried on."""
    assert not lab.unscripted(), f"calls no rule answered (script them, or lab.allow): {lab.unscripted()}"


@pytest.fixture
def lab(tmp_path) -> Lab:
    lab = Lab(tmp_path)
    yield lab
    finished(lab)

