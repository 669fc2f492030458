"""The seed-001 EMS system as it sits on a sandbox VPS: the /root hierarchy, the repo's compose files (images
from the sandbox registry), the .env files and the GHCR token file, laid out as an operator would have them.
"""
from __future__ import annotations

import os
from pathlib import Path

from . import registry

SYSTEM = "ems_system"
HEALTH = """    healthcheck:
      test: ["CMD", "/bin/busybox", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/health"]
      interval: 1s
      timeout: 2s
      retries: 3
"""


def _service(name: str, image: str, port: int, volumes: list[str]) -> str:
    vols = "".join(f"      - {v}\n" for v in volumes)
    return (f"services:\n  {name}:\n    image: {image}\n    restart: unless-stopped\n"
            f"    ports: [\"127.0.0.1:{port}:8080\"]\n    volumes:\n{vols}" + HEALTH)


def _app(app: str, port: int) -> str:
    image = f"{registry.SERVER}/edumigsoft/{app}_server:${{IMAGE_TAG:?IMAGE_TAG is set by fab deploy}}"
    return _service(app, image, port, [
        f"${{UPLOADS_HOST_PATH:-/root/{SYSTEM}/data/uploads/{app}}}:/data/uploads",
        f"${{LOGS_HOST_PATH:-/root/{SYSTEM}/data/logs/{app}}}:/data/logs"])


COMPOSE = {
    "repo/servers/infra/docker-compose.prod.yml":
        _service("traefik", f"{registry.SERVER}/sandbox/proxy:stable", 8088, ["/root/infra/letsencrypt:/letsencrypt"]),
    "repo/servers/containers/postgres/docker-compose.prod.yml":
        _service("postgres", f"{registry.SERVER}/sandbox/db:stable", 5432, ["pgdata:/var/lib/postgresql/data"])
        + "volumes:\n  pgdata:\n    name: ems_pgdata\n",
    "repo/servers/ems/container/docker-compose.prod.yml": _app("ems", 8080),
    "repo/servers/sms/container/docker-compose.prod.yml": _app("sms", 8081),
}
ENV_EXAMPLE = "ENVIRONMENT=production\n# Dev: ../../.dev-data/uploads/{app} | VPS: /root/ems_system/data/uploads/{app}\n" \
              "UPLOADS_HOST_PATH=/root/ems_system/data/uploads/{app}\nJWT_KEY=change-me\n"


def seed(root: Path, token: str) -> None:
    """Write the system under ``root`` (the host's /root): hierarchy, repo, .env files, token file (mode 600)."""
    base = root / SYSTEM
    for d in ("data/uploads/ems", "data/uploads/sms", "data/logs/ems", "data/logs/sms", "data/backups"):
        (base / d).mkdir(parents=True, exist_ok=True)
    (root / "infra" / "letsencrypt").mkdir(parents=True, exist_ok=True)
    for rel, text in COMPOSE.items():
        path = base / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for app in ("ems", "sms"):
        folder = base / f"repo/servers/{app}/container"
        (folder / ".env_example").write_text(ENV_EXAMPLE.format(app=app))
        (folder / ".env").write_text(ENV_EXAMPLE.format(app=app).replace("change-me", "sandbox-" + app))
    write_token(root, token)


def write_token(root: Path, token: str, name: str = SYSTEM) -> None:
    """The seed's token file: ``export GITHUB_TOKEN=...`` in <name>/.secrets/github, folder 700, file 600."""
    secrets = root / name / ".secrets"
    secrets.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(secrets, 0o700)
    path = secrets / "github"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(f"export GITHUB_TOKEN={token}\n")
    os.chmod(path, 0o600)


OLD = "/root/old"  # where the legacy layout lives on a sandbox host (inside its private /root)
LEGACY = {"repo": f"{OLD}/ems_system", "letsencrypt": f"{OLD}/letsencrypt", "uploads": f"{OLD}/uploads",
          "logs": f"{OLD}/logs", "volumes": ["ems_pgdata"]}


def seed_legacy(root: Path, token: str, files: int = 2000) -> None:
    """A host still on the old paths (seed 001 section 3, before step 1): the repo, letsencrypt and uploads
    outside the hierarchy, the .env files pointing there. Uploads hold ``files`` files with odd names
    (spaces, unicode, a symlink, an empty folder). The token file is already in its new place."""
    old = root / "old"
    repo = old / "ems_system"
    for rel, text in COMPOSE.items():
        path = repo / rel.removeprefix("repo/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text.replace("/root/infra/letsencrypt:", "${LETSENCRYPT_PATH:-/root/infra/letsencrypt}:"))
    (repo / "servers/infra/.env").write_text(f"LETSENCRYPT_PATH={OLD}/letsencrypt\n")
    for app in ("ems", "sms"):
        folder = repo / f"servers/{app}/container"
        (folder / ".env_example").write_text(ENV_EXAMPLE.format(app=app))
        (folder / ".env").write_text(f"ENVIRONMENT=production\nJWT_KEY=old-{app}\nIMAGE_TAG=v1.4.2\n"
                                     f"UPLOADS_HOST_PATH={OLD}/uploads/{app}\nLOGS_HOST_PATH={OLD}/logs/{app}\n")
        os.chmod(folder / ".env", 0o600)
        (old / "logs" / app).mkdir(parents=True, exist_ok=True)
    acme = old / "letsencrypt"
    acme.mkdir(parents=True, exist_ok=True)
    (acme / "acme.json").write_text('{"letsencrypt": {"Account": {"Email": "ops@example.org"}}}\n')
    os.chmod(acme / "acme.json", 0o600)
    uploads = old / "uploads"
    odd = ["relatório final.pdf", "foto 01.jpg", "ação—çãõ ü.txt", "日本語.txt", "with'quote.txt", "a b  c"]
    for i in range(files):
        app = "ems" if i % 3 else "sms"
        name = odd[i % len(odd)] if i < 60 else f"file-{i:05d}.bin"
        folder = uploads / app / f"batch {i % 17}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{i}-{name}").write_bytes(os.urandom(64 + i % 700))
    (uploads / "ems" / "empty folder").mkdir(parents=True, exist_ok=True)
    (uploads / "ems" / "latest.pdf").symlink_to("batch 1/1-foto 01.jpg")
    write_token(root, token)


# What an operator types first on a seed VPS: docker login with the token file's token.
LOGIN = f"""
while IFS= read -r l; do case $l in "export GITHUB_TOKEN="*) t=${{l#export GITHUB_TOKEN=}};; esac; done < /root/{SYSTEM}/.secrets/github
printf '%s' "$t" | docker login {registry.SERVER} -u {registry.USERNAME} --password-stdin >/dev/null 2>&1
"""
START_LEGACY = f"""
set -e
cd {OLD}/ems_system/servers
{LOGIN}
(cd infra && docker compose -p infra -f docker-compose.prod.yml up -d --wait) >/dev/null 2>&1
(cd containers/postgres && docker compose -p postgres -f docker-compose.prod.yml up -d --wait) >/dev/null 2>&1
docker compose -p postgres -f containers/postgres/docker-compose.prod.yml exec -T postgres /bin/busybox sh -c \
  'echo "rows: 42" > /var/lib/postgresql/data/table.dat' >/dev/null
(cd ems/container && docker compose -p ems -f docker-compose.prod.yml up -d --wait) >/dev/null 2>&1
(cd sms/container && docker compose -p sms -f docker-compose.prod.yml up -d --wait) >/dev/null 2>&1
"""
