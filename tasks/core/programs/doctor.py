"""fab doctor: the seeds' troubleshooting rows as checks. The program (sh/doctor.sh) reads the facts on the host,
read-only; each check here judges them (OK, WARN or FAIL) and says the fix, so each rule is written once and
tested against captured docker output."""
from __future__ import annotations

import json
from datetime import datetime, timezone

from ..model import Stack
from ..target import Target
from .backup import listed, series
from .declare import add_databases, add_stacks, placeholder_words
from .doctor_db import databases
from .doctor_tls import certificates
from .finding import Finding
from .protocol import Program, Result, count, fields, report
from .setup import external_networks
from .token import WARN_DAYS, ApiAnswer

BACKUP_AGE = 2 * 86400   # the newest backup's age doctor warns past, where backup: {max_age} says nothing
WEB_PORTS = {80, 443}   # a proxy's ports: published on every address on purpose


def doctor_program(target: Target, github_api: str = "", dbs: list[Stack] | None = None) -> Program:
    """Read-only: the facts every check judges (GitHub asked about the token when ``github_api`` is given), of
    the database stacks ``dbs`` that run here (default: all of the system's; a swarm's: those on this node)."""
    dbs = target.system.databases if dbs is None else dbs
    prog = add_stacks(Program(f"doctor of {target.label}", {"STATE": target.state_dir, "SECRETS": target.secrets,
                                                             "GITHUB_API": github_api}), target,
                      list(target.system.stacks))
    add_databases(prog, target, dbs)
    prog.step("doctor_facts", *placeholder_words(list(target.system.stacks)))
    prog.step("doctor_tls", *(s.binary.certs for s in target.system.binaries() if s.binary.certs))
    if target.keeps_token:
        prog.step("check_token_file", target.secrets)
        prog.step("token_expiry")
    if dbs or target.system.backup.has_files:
        prog.head["BACKUPS"] = target.backups
        prog.step("backups_report", *series(target, dbs))
    return prog


@report
def findings(target: Target, result: Result, now: float, dbs: list[Stack] | None = None,
             elsewhere: dict[str, str] | None = None) -> list[Finding]:
    """Every check's verdict on what the program reported, in the order an operator fixes them (``dbs`` as
    given to the program; ``elsewhere``: a swarm system's database stacks whose task runs on another host)."""
    configs = {d["stack"]: d["config"] for d in result.all("compose")}
    away = [Finding("database", "ok", f"stack {stack}: its database runs on {host} (a swarm task): checked there, "
                    "with its backups", f"fab doctor --host {host}") for stack, host in (elsewhere or {}).items()]
    return [*_docker(result), *_disks(target, result), *_stacks(result), *_networks(result, configs),
            *_ports(configs), *_unpinned(configs), *_units(result), *_placeholders(result),
            *databases(result), *away, *certificates(result, now), *_token(result, now), *_lock(target, result),
            *_backups(target, result, now, target.system.databases if dbs is None else dbs), *_clock(result, now)]


def _docker(result: Result) -> list[Finding]:
    engine, compose = fields(result.one("versions"), "engine", "compose")
    out = [Finding("docker", "ok", f"dockerd {engine} answers") if engine else
           Finding("docker", "fail", "dockerd does not answer", "systemctl start docker (or fab bootstrap)")]
    out.append(Finding("compose", "ok", f"Compose {compose}") if compose else
               Finding("compose", "fail", "the Compose v2 plugin is missing", "fab bootstrap --host HOST"))
    return out


def _disks(target: Target, result: Result) -> list[Finding]:
    """Free space and inodes: FAIL under 5% (or 1 GiB), WARN under 15%."""
    out = []
    for d in result.all("fs"):
        path = d["path"]
        size, avail, files, ffree = (count(d[k]) for k in ("size", "avail", "files", "ffree"))
        fix = f"fab prune --host {target.host.name}" if path != "/" else "free space on / (logs, old backups)"
        for what, free, total, floor in (("space", avail, size, 1 << 30), ("inodes", ffree, files, 0)):
            share = free / total if total else 1
            level = "fail" if share < 0.05 or free < floor else "warn" if share < 0.15 else "ok"
            shown = f"{free / (1 << 30):.1f} GiB" if what == "space" else f"{free} inodes"
            out.append(Finding("disk", level, f"{path}: {shown} free ({share:.0%})", "" if level == "ok" else fix))
    return out


def _stacks(result: Result) -> list[Finding]:
    return [Finding("compose files", "fail", f"stack {d['stack']}: compose cannot read it: {d['text']}",
                    "fix the compose file or its .env (fab setup --host HOST says what is missing)")
            for d in result.all("stack_error")]


def _networks(result: Result, configs: dict[str, str]) -> list[Finding]:
    """Seed 000's "network not found": an external network the compose files need that does not exist."""
    there = set((fields(result.one("networks"), "names")[0] if result.one("networks") else "").split())
    out = []
    for name in external_networks(list(configs.values())):
        out.append(Finding("networks", "ok", f"external network {name} exists") if name in there else
                   Finding("networks", "fail", f"external network {name} is missing (compose: network {name} "
                                               "declared as external, but could not be found)",
                           "fab setup --host HOST (creates it)"))
    return out


def _services(configs: dict[str, str]):
    """(stack, service name, service) of every compose configuration that parses."""
    for stack, raw in configs.items():
        try:
            services = json.loads(raw).get("services") or {}
        except (ValueError, AttributeError):
            continue
        for name, svc in services.items() if isinstance(services, dict) else ():
            if isinstance(svc, dict):
                yield stack, name, svc


def _ports(configs: dict[str, str]) -> list[Finding]:
    """Ports published on every address: a database or an app reachable from the internet past the proxy."""
    out = []
    for stack, name, svc in _services(configs):
        for port in svc.get("ports") or []:
            if not isinstance(port, dict) or port.get("host_ip", "") not in ("", "0.0.0.0", "::"):
                continue
            published = str(port.get("published", ""))
            if not published.isdigit():
                continue
            web = int(published) in WEB_PORTS
            out.append(Finding("ports", "ok" if web else "warn",
                               f"{stack}/{name} publishes {published} on every address" + (" (web)" if web else ""),
                               "" if web else f"publish it on 127.0.0.1 only ('127.0.0.1:{published}:"
                                              f"{port.get('target', published)}') or firewall it"))
    return out


def _unpinned(configs: dict[str, str]) -> list[Finding]:
    """Images pinned by nothing: no tag, or `latest` (what runs changes with the next pull)."""
    out = []
    for stack, name, svc in _services(configs):
        image = svc.get("image")
        if not isinstance(image, str) or "@" in image:
            continue
        last = image.rsplit("/", 1)[-1]
        if ":" not in last or last.endswith(":latest"):
            out.append(Finding("images", "warn", f"{stack}/{name} runs {image}: pinned by nothing",
                               "name a version tag in its compose file (the release records its digest)"))
    return out


def _placeholders(result: Result) -> list[Finding]:
    by_file: dict[str, list[str]] = {}
    for d in result.all("placeholder"):
        by_file.setdefault(d["path"], []).append(d["key"])
    return [Finding(".env", "fail", f"{path}: {', '.join(keys)} still hold{'s' if len(keys) == 1 else ''} "
                                    "their template's placeholder",
                    "fill them in on the host (a deploy refuses them)") for path, keys in by_file.items()]


def _lock(target: Target, result: Result) -> list[Finding]:
    lock = result.one("lock")
    if not lock:
        return []
    holder, stale, gone = fields(lock, "holder", "stale", "gone")
    if stale == "1":
        return [Finding("lock", "warn", f"a stale deploy lock: {holder} ({gone})",
                        f"fab unlock --host {target.host.name} --force")]
    return [Finding("lock", "ok", f"a deploy is running: {holder}")]


def _clock(result: Result, now: float) -> list[Finding]:
    """The host's clock against the operator's: TLS, token expiry and backup ages depend on it."""
    epoch = count(fields(result.one("clock"), "epoch")[0])
    off = epoch - now
    level = "fail" if abs(off) > 60 else "warn" if abs(off) > 5 else "ok"
    return [Finding("clock", level, f"the host's clock is {abs(off):.0f} s {'ahead' if off > 0 else 'behind'}",
                    "" if level == "ok" else "timedatectl set-ntp true (and check its NTP server)")]


def _token(result: Result, now: float) -> list[Finding]:
    """The token file a system that pins images needs, and GitHub's view of its token (_expiry)."""
    token = result.one("token")
    if not token:
        return []
    if token.get("missing"):
        return [Finding("token", "fail", f"the token file {token['path']} is missing: no pull can log in",
                        "fab rotate-token --host HOST")]
    mode = fields(token, "mode")[0]
    out = [Finding("token", "warn", f"the token file {token['path']} has mode {mode}", f"chmod 600 {token['path']}")
           if mode != "600" else Finding("token", "ok", "the token file is there, mode 600")]
    return out + _expiry(result, now)


def _expiry(result: Result, now: float) -> list[Finding]:
    """GitHub's view of the token (as fab token-status and deploy read it): expired or without read:packages
    FAIL, expiring within WARN_DAYS WARN, GitHub not reachable from the host WARN (nothing known)."""
    asked, api = result.one("api"), ApiAnswer.parse(result)
    if asked is None:
        return []
    if api is None:
        return [Finding("token", "warn", "GitHub's API did not answer from the host: the token's expiry is unknown",
                        "fab token-status --host HOST (github_api: in hosts.yml if GitHub is reached another way)")]
    at = datetime.fromtimestamp(now, timezone.utc)
    facts, warnings = api.findings(WARN_DAYS, at)
    if not warnings:
        return [Finding("token", "ok", f"GitHub: the token {'; '.join(facts)}")]
    return [Finding("token", "fail" if api.unusable(at) else "warn", f"GitHub: the token {'; '.join(warnings)}"
                    + (f" ({'; '.join(facts)})" if facts else ""), "fab rotate-token --host HOST")]


def _backups(target: Target, result: Result, now: float, dbs: list[Stack]) -> list[Finding]:
    """The newest verified backup of each series kept here: WARN when there is none or it is older than backup:
    {max_age} (two days where that is not set)."""
    if not (dbs or target.system.backup.has_files):
        return []
    limit = target.system.backup.max_age or BACKUP_AGE
    newest: dict[str, float] = {}
    for b in listed(result):
        if b.verified and b.stack not in newest:
            newest[b.stack] = now - datetime.fromisoformat(b.created.replace("Z", "+00:00")).timestamp()
    out = []
    for name in series(target, dbs):
        age = newest.get(name)
        if age is None or age > limit:
            what = f"{age / 3600:.0f} h old" if age is not None else "none yet"
            out.append(Finding("backups", "warn", f"newest verified backup of {name}: {what} (limit {limit / 3600:.0f} h)",
                               "fab backup --host HOST (and its schedule: examples/schedule/)"))
        else:
            out.append(Finding("backups", "ok", f"newest verified backup of {name}: {age / 3600:.0f} h old"))
    return out


def _units(result: Result) -> list[Finding]:
    """A binary's unit reads environment files: one missing stops it starting, one that sets nothing leaves it
    without its values (seed 003's DB_PASS)."""
    out = []
    for d in result.all("unitenv"):
        unit, path, state = fields(d, "unit", "path", "result")
        fix = f"fill in {path} on the host (root's only, mode 600), then systemctl restart {unit}"
        if state == "missing":
            out.append(Finding("unit env", "fail", f"{unit} reads {path}, which does not exist: it cannot start",
                               fix))
        elif state == "empty":
            out.append(Finding("unit env", "fail", f"{unit} reads {path}, which sets nothing", fix))
        else:
            out.append(Finding("unit env", "ok", f"{unit} reads {path}"))
    return out
