"""examples/ on a sandbox host, the operator's steps done for them: the example's repo/ in <root>/<system>/repo,
each .env made from its template with the given values, the registry token file, and an inventory of the
example's hosts.yml reaching the sandbox host. Shared by the end-to-end tests and bench/downtime.py."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import yaml

from . import acme, proc, registry, system

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

# seeds 000/001 (EMS + SMS behind Traefik, one shared PostgreSQL) and 002 (EnlevoHub): their .env values
EMS_ENV = {"servers/containers/postgres": {"POSTGRES_PASSWORD": "pg-admin-pw", "EMS_DB_PASSWORD": "ems-pw",
                                           "SMS_DB_PASSWORD": "sms-pw"},
           "servers/ems/container": {"DB_PASSWORD": "ems-pw", "REGISTRY": registry.SERVER},
           "servers/sms/container": {"DB_PASSWORD": "sms-pw", "REGISTRY": registry.SERVER}}
ENLEVOHUB_ENV = {".": {"JWT_SECRET": "jwt-for-the-sandbox", "DB_PASSWORD": "enlevo-sandbox-pw",
                       "REGISTRY": registry.SERVER}}


def install(sandbox, folder: Path, name: str, sys_name: str, env: dict[str, dict[str, str]], host: str = "t1"):
    """examples/<name> on the clean sandbox host ``host``; returns (host, the inventory written in ``folder``)."""
    host = sandbox.host(host)
    host.reset()
    base = host.root / sys_name
    shutil.copytree(EXAMPLES / name / "repo", base / "repo", symlinks=True)
    for where, values in env.items():
        templates = [base / "repo" / where / t for t in (".env_example", ".env.docker")]
        text = next((t.read_text() for t in templates if t.exists()), "")
        lines = [ln for ln in text.splitlines() if ln.split("=", 1)[0] not in values]
        (base / "repo" / where / ".env").write_text("\n".join(lines + [f"{k}={v}" for k, v in values.items()]) + "\n")
    system.write_token(host.root, sandbox.registry.token)
    if sys_name != system.SYSTEM:
        shutil.move(str(host.root / system.SYSTEM / ".secrets"), str(base / ".secrets"))
    inv = yaml.safe_load((EXAMPLES / name / "hosts.yml").read_text())
    inv["registry"] = {"server": registry.SERVER, "username": registry.USERNAME}
    inv["hosts"] = {host.name: {**sandbox.inventory_entry(host), "systems": [sys_name]}}
    path = folder / "hosts.yml"
    path.write_text(yaml.safe_dump(inv, sort_keys=False))
    return host, path


EMS_NAMES = ("api.ems.edumigsoft.com.br", "api.sms.edumigsoft.com.br")   # seed 001's, its routers' Host() rules
EMS_URL, SMS_URL = (f"https://{name}" for name in EMS_NAMES)


def ems(sandbox, folder: Path, host: str = "t1"):
    """The EMS example, its Traefik talking to the sandbox host's own dockerd and getting its certificates from
    the sandbox's Pebble (its CA trusted through a file in /root/infra/letsencrypt), which finds the example's
    names on this host."""
    host, path = install(sandbox, folder, "ems", "ems_system", EMS_ENV, host)
    ca = host.root / "infra/letsencrypt/sandbox-acme-ca.crt"
    ca.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(sandbox.acme.ca_file, ca)
    (host.root / "ems_system/repo/servers/infra/.env").write_text(
        f"DOCKER_SOCKET={host.sock}\nACME_CA_SERVER={acme.DIRECTORY}\n"
        f"ACME_CA_CERTIFICATES=/letsencrypt/{ca.name}\nACME_CERTIFICATES_HOURS={acme.VALIDITY // 3600}\n"
        "ACME_EMAIL=ops@edumigsoft.example\n")
    for name in EMS_NAMES:
        sandbox.acme.point(name, host.address)
    return host, path


def ems_certificates(host, timeout: float = 90) -> None:
    """Wait until the EMS example's Traefik holds a certificate for each of its names (Pebble issues them
    seconds after Traefik starts): /root/infra/letsencrypt stays the same from then on."""
    acme_json = host.root / "infra/letsencrypt/acme.json"

    def issued() -> bool:
        try:
            held = json.loads(acme_json.read_text())["le"]["Certificates"] or []
        except (OSError, ValueError, KeyError, TypeError):
            return False
        return {c["domain"]["main"] for c in held} >= set(EMS_NAMES)
    proc.wait_for("the EMS example's certificates", issued, timeout)


def ems_for_rollout(host, inventory: Path, strategy: str = "start-first", replicas: int = 1, batch: int = 0) -> None:
    """The EMS stack's rollout as the example ships it (start-first) with ``replicas`` of it, ``batch`` at a
    time; with ``strategy`` stop-first the same stack changes the default way (the bench's baseline)."""
    inv = yaml.safe_load(inventory.read_text())
    stack = inv["systems"]["ems_system"]["stacks"]["ems"]
    stack["rollout"] = {"strategy": "start-first", "batch": batch} if strategy == "start-first" else strategy
    if replicas != 1:
        stack["scale"] = {"ems": replicas}
    inventory.write_text(yaml.safe_dump(inv, sort_keys=False))


# The seed's own nginx.conf for EnlevoHub: the backends found through Docker's DNS, asked again every 5 s.
SEED_NGINX_CONF = """server {
  listen 80;
  resolver 127.0.0.11 valid=5s ipv6=off;
  set $backend http://backend:3001;
  location = /healthz { default_type text/plain; return 200 "ok\\n"; }
  location /api/ {
    rewrite ^/api/(.*)$ /$1 break;
    proxy_pass $backend;
  }
}
"""


def enlevohub_for_rollout(host, inventory: Path, strategy: str = "start-first", batch: int = 0) -> None:
    """The EnlevoHub example as shipped (start-first behind nginx, the tool writing its upstream block),
    ``batch`` backends at a time; or with ``strategy`` stop-first, the seed's own way: no rollout, nginx
    finding the backends through Docker's DNS (the bench's baseline)."""
    inv = yaml.safe_load(inventory.read_text())
    stack = inv["systems"]["enlevohub"]["stacks"]["app"]
    if strategy == "start-first":
        stack["rollout"]["batch"] = batch
    else:
        del stack["rollout"]
        (host.root / "enlevohub/repo/nginx.conf").write_text(SEED_NGINX_CONF)
    inventory.write_text(yaml.safe_dump(inv, sort_keys=False))


def enlevohub_swarm(sandbox, folder: Path, names: tuple[str, ...]) -> Path:
    """examples/enlevohub/swarm.yml on the sandbox hosts ``names`` (a swarm's managers): on each, the example's
    repo/ and .env and the token in <root>/enlevohub (anything there before removed; the hosts' containers and
    swarm untouched); returns the inventory, its hosts reaching the sandbox hosts with the example's labels."""
    inv = yaml.safe_load((EXAMPLES / "enlevohub" / "swarm.yml").read_text())
    inv["registry"] = {"server": registry.SERVER, "username": registry.USERNAME}
    for name in names:
        host = sandbox.host(name)
        base = host.root / "enlevohub"
        shutil.rmtree(base, ignore_errors=True)
        shutil.copytree(EXAMPLES / "enlevohub" / "repo", base / "repo", symlinks=True)
        values = {**ENLEVOHUB_ENV["."], "REGISTRY": registry.SERVER}
        (base / "repo/swarm/.env").write_text("".join(f"{k}={v}\n" for k, v in values.items()))
        system.write_token(host.root, sandbox.registry.token, "enlevohub")
        inv["hosts"][name] = {**sandbox.inventory_entry(host), **{k: v for k, v in inv["hosts"][name].items()
                                                                   if k != "address"}}
    path = folder / "hosts.yml"
    path.write_text(yaml.safe_dump(inv, sort_keys=False))
    return path
