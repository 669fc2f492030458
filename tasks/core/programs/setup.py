"""The setup programs: seed 001's hierarchy, .env files from their examples, the external networks the
compose files declare; and what they report, read into a to-do list."""
from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass, field

from ..target import Target
from .protocol import Program, Result, report


def hierarchy(target: Target) -> list[tuple[str, str]]:
    """(folder, enforced mode or "") of seed 001's hierarchy: shared by setup and migrate-layout."""
    apps = [a.name for a in target.system.apps()]
    dirs = [(target.letsencrypt, ""), (target.path("data/backups"), "")]
    dirs += [(target.path(f"data/{kind}/{app}"), "") for kind in ("uploads", "logs") for app in apps]
    return dirs + [(target.state_dir, "700"), (posixpath.dirname(target.secrets), "700")]


def add_hierarchy(prog: Program, target: Target) -> Program:
    for path, mode in hierarchy(target):
        prog.step("ensure_dir", path, mode)
    return prog


def setup_program(target: Target, recovering: bool = False) -> Program:
    """The tool's own folders (state; the token's, for a system that pins images), the .env files from their
    templates; report placeholders, compose configs and the token file. What the stacks themselves need
    (folders they bind-mount, external networks) comes from those configs: ``finish_program``. A recovery
    places the lost server's .env files first (once repo/ is there), so none is made from its template."""
    head = {"STATE": target.state_dir, "BASE": target.base} if recovering else {}
    prog = Program(f"setup on {target.label}", head).step("ensure_dir", target.state_dir, "700")
    private = target.keeps_token
    if private:
        prog.step("ensure_dir", posixpath.dirname(target.secrets), "700")
    repo = target.system.repo
    if repo:   # (before the .env files: they are made from the templates the clone brings)
        if repo.known_host:
            prog.step("repo_key", target.deploy_key)
        prog.step("repo_clone", target.path("repo"), repo.url, repo.ref, target.deploy_key, repo.known_host)
    if recovering:
        prog.step("recover_env")
    for s in target.system.stacks:
        if s.binary:
            if s.binary.unit_template:
                prog.step("ensure_unit", s.binary.unit_file, target.path(s.binary.unit_template),
                          s.binary.env_dir, posixpath.dirname(s.binary.path), target.base)
            continue
        prog.step("ensure_env", s.name, target.compose(s), s.env_template or "", "\n".join(s.placeholders),
                  *[a.tag_var for a in s.apps])
    return prog.step("check_token_file", target.secrets) if private else prog


def finish_program(target: Target, folders: list[str], networks: list[str]) -> Program:
    """Create the folders the stacks bind-mount and the external Docker networks they declare (seed 000: the
    forgotten step), as their compose files say: each system gets only what it uses."""
    prog = Program(f"setup of the stacks' needs on {target.label}")
    for path in folders:
        prog.step("ensure_dir", path, "")
    for name in networks:
        prog.step("ensure_network", name)
    return prog


@dataclass
class SetupReport:
    created: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    todo: list[str] = field(default_factory=list)
    networks: list[str] = field(default_factory=list)   # external networks the compose files declare
    folders: list[str] = field(default_factory=list)    # folders they bind-mount, on the host, outside repo/
    keys: list[str] = field(default_factory=list)       # the deploy key's public half (repo: over SSH)
    missing: list[str] = field(default_factory=list)    # what the stacks need that is not there: compose files, token

    @report
    def add(self, result: Result, host_name: str, target: Target | None = None) -> None:
        """Fold one program's report in (setup's, then the networks')."""
        for d in result.all("dir") + result.all("env") + result.all("network") + result.all("unit"):
            what = d.get("path") or f"network {d.get('name')}"
            if d["result"] == "created":
                self.created.append(what)
            elif d["result"] == "fixed":
                self.created.append(f"{what} (mode fixed)")
            elif d["result"] == "updated":
                self.created.append(f"{what} (updated from {d['template']}; systemd reloaded)")
            elif d["result"] == "missing-template":
                self.todo.append(f"{d['template']} is missing: the unit {what} cannot be installed from it")
            elif d["result"] == "missing-compose":
                self.todo.append(f"stack {d['stack']}: {d['compose']} is missing (is the repo cloned into repo/?)")
                self.missing.append(d["compose"])
            else:
                self.existing.append(what)
        by_file: dict[str, list[str]] = {}
        for d in result.all("placeholder"):
            by_file.setdefault(d["path"], []).append(d["key"])
        self.todo += [f"fill in {path}: {', '.join(keys)} still hold placeholder values" for path, keys in by_file.items()]
        self.todo += [f"fill in {d['path']}: the environment of {d['unit']} (created empty, root's only)"
                      for d in result.all("unitenv") if d["result"] == "created"]
        self.todo += [f"{d['unit']} reads {d['path']}, which is not the tool's (outside /etc/<unit>/ and the "
                      "binary's folder): left as it is; check who can read it" for d in result.all("unitenv")
                      if d["result"] == "outside"]
        for d in result.all("repo"):
            what = f"repo/ from {d['url']} at {d['commit'][:12]}"
            (self.created if d["result"] == "cloned" else self.existing).append(what)
        for d in result.all("deploy_key"):
            (self.created if d["result"] == "created" else self.existing).append(f"deploy key {d['path']}")
            self.keys.append(d["public"])
        token = result.one("token")
        if token and token.get("missing"):
            self.missing.append(token["path"])
            self.todo.append(f"create the token file {token['path']}: fab rotate-token --host {host_name} "
                             "(or by hand on the VPS: 'export GITHUB_TOKEN=ghp_...' and chmod 600)")
        elif token and token["mode"] != "600":
            self.todo.append(f"the token file {token['path']} has mode {token['mode']}: chmod 600 it")
        configs = [d["config"] for d in result.all("compose")]
        for name in external_networks(configs):
            if name not in self.networks:
                self.networks.append(name)
        for path in bind_folders(configs, target) if target else []:
            if path not in self.folders:
                self.folders.append(path)


def external_networks(configs: list[str]) -> list[str]:
    """Names of the networks declared ``external`` in `docker compose config --format json` outputs."""
    names = []
    for raw in configs:
        try:
            cfg = json.loads(raw)
        except ValueError:
            continue
        for key, net in (cfg.get("networks") or {}).items():
            if isinstance(net, dict) and net.get("external"):
                ext = net["external"]
                name = net.get("name") or (ext.get("name") if isinstance(ext, dict) else None) or key
                if name not in names:
                    names.append(name)
    return names


def bind_folders(configs: list[str], target: Target) -> list[str]:
    """The bind-mount sources of `docker compose config --format json` outputs that setup creates: inside the
    host's root (the hierarchy: /root/infra/letsencrypt, <system>/data/uploads/ems), outside repo/ (the
    checkout brings its own files), and resolved (no ${...} left)."""
    repo = target.path("repo").rstrip("/") + "/"
    root = target.host.root.rstrip("/") + "/"
    out = []
    for raw in configs:
        try:
            services = (json.loads(raw).get("services") or {}).values()
        except (ValueError, AttributeError):
            continue
        for svc in services:
            for vol in (svc.get("volumes") or []) if isinstance(svc, dict) else []:
                src = vol.get("source", "") if isinstance(vol, dict) and vol.get("type") == "bind" else ""
                path = posixpath.normpath(src) if isinstance(src, str) and src.startswith("/") else ""
                if path.startswith(root) and not (path + "/").startswith(repo) and "$" not in path \
                        and path not in out:
                    out.append(path)
    return out
