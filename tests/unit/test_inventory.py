"""Inventory loading and validation: every error names the file and line and says what is wrong."""
import textwrap
from pathlib import Path

import pytest

from tasks.core import inventory, model
from tasks.core.backupplan import BackupPlan, Retention
from tasks.core.errors import BAD_INPUT, ToolError
from tasks.core.model import NginxPool, StartFirst

REPO = Path(__file__).resolve().parents[2]

GOOD = """\
registry: {server: ghcr.io, username: edumigsoft}
systems:
  ems_system:
    stacks:
      infra: {compose: repo/servers/infra/docker-compose.prod.yml}
      ems: {compose: repo/servers/ems/container/docker-compose.prod.yml, image: edumigsoft/ems_server, health: "http://127.0.0.1:8080/health"}
hosts:
  vps1: {address: 203.0.113.10, systems: [ems_system]}
"""


def first_stack_with(keys: str) -> str:
    """GOOD with ``keys`` (flow-style YAML) added to its first stack."""
    return GOOD.replace("infra: {compose:", f"infra: {{{keys}, compose:")


def host_with(keys: str) -> str:
    """GOOD with ``keys`` (flow-style YAML) added to its host."""
    return GOOD.replace("systems: [ems_system]}", f"systems: [ems_system], {keys}}}")


def binary(spec: str) -> str:
    """GOOD with its first stack a binary stack: ``spec`` is what follows ``binary: {``."""
    return GOOD.replace("infra: {compose: repo/servers/infra/docker-compose.prod.yml}", f"infra: {{binary: {{{spec}}}")


def write(tmp_path, text, name="hosts.yml"):
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def error_of(path) -> str:
    with pytest.raises(ToolError) as e:
        inventory.load(path)
    assert e.value.code == BAD_INPUT
    return str(e.value)


def test_committed_inventory_loads_with_the_seed_stacks_in_order():
    inv = inventory.load(REPO / "hosts.yml")
    host = inv.host("vps1")
    assert [s.name for s in host.systems[0].stacks] == ["infra", "postgres", "ems", "sms"]
    assert host.root == "/root" and host.registry.server == "ghcr.io"
    assert host.targets()[0].base == "/root/ems_system"


def test_defaults(tmp_path):
    host = inventory.load(write(tmp_path, GOOD)).host("vps1")
    assert (host.user, host.port, host.root) == ("root", 22, "/root")
    system = host.systems[0]
    assert system.secrets == ".secrets/github"
    assert system.stacks[1].apps == (model.App("ems", "edumigsoft/ems_server", "IMAGE_TAG"),)
    assert system.stacks[0].apps == ()


def test_unknown_host_lists_the_known_ones(tmp_path):
    inv = inventory.load(write(tmp_path, GOOD))
    with pytest.raises(ToolError, match=r"unknown host 'vps9'.*knows vps1") as e:
        inv.host("vps9")
    assert e.value.code == BAD_INPUT
    with pytest.raises(ToolError, match="say which host"):
        inv.host(None)


@pytest.mark.parametrize("bad, line, message", [
    (GOOD.replace("address: 203.0.113.10, ", ""), 8, "hosts.vps1.address is missing"),
    (GOOD.replace("[ems_system]", "[nope]"), 8, "unknown system 'nope'"),
    (GOOD.replace("vps1:", "../etc:"), 8, "not a safe name"),
    (GOOD.replace("ems_system:", "'ems system':"), 3, "not a safe name"),
    (GOOD.replace("infra: {compose: repo/", "infra: {compose: ../../"), 5, "inside the system's folder"),
    (GOOD.replace("infra: {compose: repo/", "infra: {compose: /etc/"), 5, "inside the system's folder"),
    (GOOD.replace("image: edumigsoft/ems_server", "image: 'edumigsoft/ems_server:v1'"), 6, "not an image repository"),
    (GOOD.replace('"http://127.0.0.1:8080/health"', '"http://x/$(id)"'), 6, "must be an http(s) URL"),
    (host_with("port: '22'"), 8, "port must be a whole number"),
    (host_with("root: relative"), 8, "normalised absolute path"),
    (host_with("sudo: 'yes'"), 8, "sudo"),
    (host_with("bootstrap: {docker: podman}"), 8, "docker"),
    (host_with("bootstrap: {mirror: 'http://u:p@m/'}"), 8,
     "without a user"),
    (host_with("bootstrap: {mirror: 'file:///srv/debian'}"), 8,
     "must be an http(s):// URL"),
    (host_with("bootstrap: {mirror: 'http://m/d main'}"), 8,
     "must be an http(s):// URL"),
    (host_with("bootstrap: {mirror: 'http://m/?a=1'}"), 8,
     "must be an http(s):// URL"),
    (host_with("sudo: 1"), 8, "sudo"),
    (host_with("user: -oProxyCommand=x"), 8, "not a user name"),
    (host_with("user: 'opc ALL=(ALL)'"), 8, "not a user name"),
    (host_with("colour: red"), 8, "unknown key 'colour'"),
    (GOOD.replace("registry: {server: ghcr.io, username: edumigsoft}", "registry: {server: 'ghcr.io; rm -rf /'}"), 1,
     "not a host"),
    (GOOD.replace("server: ghcr.io", "server: --password-stdin"), 1, "not a host"),
    (GOOD.replace("server: ghcr.io", "server: -x.io"), 1, "not a host"),
    (GOOD.replace("username: edumigsoft}", "username: edumigsoft, token: per_deploy}"), 1, "'stored' or 'per-deploy'"),
    (GOOD.replace("username: edumigsoft}", "username: edumigsoft, token: true}"), 1, "'stored' or 'per-deploy'"),
    (GOOD.replace("username: edumigsoft}", "username: edumigsoft, token: ''}"), 1, "'stored' or 'per-deploy'"),
    (GOOD.replace("username: edumigsoft}", "username: edumigsoft, token: ghp_0123456789abcdef}"), 1,
     "'stored' or 'per-deploy'"),
    (GOOD + "  vps1: {address: x, systems: [ems_system]}\n", 9, "'vps1' appears twice"),
    (GOOD.replace("systems: [ems_system]}", "systems: [ems_system, ems_system]}"), 8, "lists system 'ems_system' twice"),
    (GOOD.replace("systems: [ems_system]}", "systems: [[ems_system]]}"), 8, "['ems_system'] is not a safe name"),
    (GOOD.replace("    stacks:\n      infra: {compose: repo/servers/infra/docker-compose.prod.yml}\n"
                  "      ems: {compose: repo/servers/ems/container/docker-compose.prod.yml, image: edumigsoft/ems_server, health: \"http://127.0.0.1:8080/health\"}\n",
                  "    stacks: {}\n"), 4, "at least one stack"),
    ("registry: {server: r, username: u}\nsystems: [a, b]\n", 2, "systems must be a mapping"),
    (GOOD.replace("infra: {compose:", "infra: {project: 'Postgres DB', compose:"), 5, "not a compose project name"),
    (GOOD.replace("infra: {compose:", "infra: {images: {backend: {image: a/b}}, compose:"), 5,
     "images.backend.tag_var is missing"),
    (GOOD.replace("infra: {compose:", "infra: {images: {b: {image: a/b, tag_var: T}, f: {image: a/f, tag_var: T}}, "
                  "compose:"), 5, "two images use T: each needs its own variable"),
    (GOOD.replace("infra: {compose:", "infra: {image: a/b, images: {b: {image: a/b, tag_var: T}}, compose:"), 5,
     "give either image: or images:"),
    (GOOD.replace("infra: {compose:", "infra: {images: {ems: {image: a/b, tag_var: T}}, compose:"), 6,
     "app 'ems' is pinned by stacks 'infra' and 'ems'"),
    (GOOD.replace("infra: {compose:", "infra: {tag_var: T, compose:"), 5, "tag_var: without image:"),
    (GOOD.replace("infra: {compose:", "infra: {scale: {backend: 101}, compose:"), 5, "from 0 to 100"),
    (GOOD.replace("infra: {compose:", "infra: {scale: {'b k': 2}, compose:"), 5, "not a compose service name"),
    (GOOD.replace("infra: {compose:", "infra: {scale: [backend], compose:"), 5, "must be a mapping"),
    (GOOD.replace("infra: {compose:", "infra: {require_healthcheck: 'yes', compose:"), 5, "true or false"),
    (GOOD.replace("infra: {compose:", "infra: {env_template: ../../etc/passwd, compose:"), 5, "a file name beside"),
    (GOOD.replace("infra: {compose:", "infra: {env_template: '..', compose:"), 5, "a file name beside"),
    (GOOD.replace("infra: {compose:", "infra: {placeholders: enlevohub2026, compose:"), 5, "must be a list"),
    (GOOD.replace("infra: {compose:", "infra: {placeholders: [\"a\\nb\"], compose:"), 5, "must be a list"),
    (GOOD.replace("infra: {compose:", "infra: {placeholders: [''], compose:"), 5, "must be a list"),
    (GOOD.replace("infra: {compose:", "infra: {images: {b: {image: 'a/b:v1', tag_var: T}}, compose:"), 5,
     "not an image repository"),
    (GOOD.replace("infra: {compose:", "infra: {project: ems_system-ems, compose:"), 8,
     "compose project ems_system-ems for two stacks"),
    (first_stack_with("database: {service: 'db; rm'}"), 5, "must name the compose service"),
    (first_stack_with("database: {}"), 5, "infra.database.service is missing"),
    (first_stack_with("database: {service: db, databases: ['a/b']}"), 5, "databases must be a list of database names"),
    (first_stack_with("database: {service: db, user: \"x'y\"}"), 5, "not a PostgreSQL role name"),
    (first_stack_with("database: {service: db, port: 5432}"), 5, "unknown key 'port'"),
    (GOOD.replace("    stacks:\n", "    backup: {before_deploy: true}\n    stacks:\n", 1), 4,
     "no stack with database: to back up"),
    (GOOD.replace("    stacks:\n", "    backup: {keep: {daily: -1}}\n    stacks:\n", 1), 4, "from 0 to 1000"),
    (GOOD.replace("    stacks:\n", "    backup: {keep: {hourly: 3}}\n    stacks:\n", 1), 4, "unknown key 'hourly'"),
    (GOOD.replace("    stacks:\n", "    backup: before-deploy\n    stacks:\n", 1), 4, "must be a mapping"),
    (binary("path: /opt/p/app, unit: p}, compose: x.yml"), 5, "unknown key 'compose'"),
    (binary("path: app, unit: p}"), 5, "must be a normalised absolute path"),
    (binary("path: /app, unit: p}"), 5, "a folder of its own"),
    (binary("path: /opt/p/app, unit: 'p; reboot'}"), 5, "not a systemd unit name"),
    (binary("path: /opt/p/app, unit: p, owner: 'opc:opc:x'}"), 5, "user or user:group"),
    (binary("path: /opt/p/app, unit: p, mode: 'u+x'}"), 5, "octal mode"),
    (binary("path: /opt/p/app, unit: p, keep: 1}"), 5, "from 2 to 100"),
    (binary("path: /opt/p/app, unit: p, unit_template: ../../etc/x}"), 5, "inside the system's folder"),
    (binary("path: /etc/passwd, unit: p}"), 5, "the system's own"),
    (binary("path: /opt/p/app, unit: p, unit_template: .secrets/github}"), 5, "not a template of the repository"),
    (binary("path: /opt/p/app, unit: p, unit_template: state/current}"), 5, "unit_template must lie under repo/"),
    (binary("path: /usr/bin/app, unit: p}"), 5, "the system's own"),
    (binary("path: /opt/p/app, unit: p, certs: certs}"), 5, "must be a normalised absolute path"),
    (binary("path: /opt/p/app, unit: p, certs: '/opt/p/../../etc'}"), 5, "must be a normalised absolute path"),
    (binary("path: /opt/p/app, unit: p, certs: /}"), 5, "must be a normalised absolute path"),
    (binary("path: /opt/p/app, unit: p, certs: \"/opt/p\\ncerts\"}"), 5, "must be a path on one line"),
    (binary("path: /opt/p/app, unit: p, certs: [/opt/p/certs]}"), 5, "certs"),
    (first_stack_with("image: -evil/x"), 5, "not an image repository"),
    (first_stack_with("image: a/b, tag_var: PATH"), 5, "'PATH' is a variable the shell, docker or compose read"),
    (first_stack_with("image: a/b, tag_var: COMPOSE_FILE"), 5, "read themselves"),
    (GOOD.replace("hosts:\n", "github_api: 'https://api.github.com@evil.example/'\nhosts:\n"), 7,
     "must be an https:// URL"),
])
def test_errors_name_file_line_and_problem(tmp_path, bad, line, message):
    path = write(tmp_path, bad)
    text = error_of(path)
    assert text.startswith(f"{path}:{line}: "), text
    assert message in text


def test_one_compose_file_with_several_images_pins_each_with_its_own_variable(tmp_path):
    """EnlevoHub's single compose file runs backend and frontend images: each is an app of the stack."""
    inv = inventory.load(write(tmp_path, GOOD.replace(
        "infra: {compose:", "infra: {images: {backend: {image: e/backend, tag_var: BACKEND_TAG}, "
        "frontend: {image: e/frontend, tag_var: FRONTEND_TAG}}, compose:")))
    system = inv.host("vps1").systems[0]
    assert [(a.name, a.image, a.tag_var) for a in system.apps()] == [
        ("backend", "e/backend", "BACKEND_TAG"), ("frontend", "e/frontend", "FRONTEND_TAG"),
        ("ems", "edumigsoft/ems_server", "IMAGE_TAG")]
    assert [a.name for a in system.apps(system.stacks[1:])] == ["ems"]


def test_replicas_live_in_hosts_yml(tmp_path):
    """Seed 002's `docker compose up --scale backend=3`, written once so no deploy undoes it."""
    inv = inventory.load(write(tmp_path, GOOD.replace("infra: {compose:", "infra: {scale: {backend: 3}, compose:")))
    assert inv.host("vps1").systems[0].stacks[0].scale == (("backend", 3),)


def test_a_stack_keeps_the_compose_project_it_was_started_with(tmp_path):
    """Taking over a hand-run VPS: ``project:`` keeps the old project (its containers and volumes)."""
    inv = inventory.load(write(tmp_path, GOOD.replace("infra: {compose:", "infra: {project: postgres, compose:")))
    target = inv.host("vps1").targets()[0]
    assert [target.project(s) for s in target.system.stacks] == ["postgres", "ems_system-ems"]
    assert inv.host("vps1").projects() == ["postgres", "ems_system-ems"]


def test_a_database_stack_and_the_backup_policy(tmp_path):
    """Seed 003's PostgreSQL marked for backups, kept by restic's rules, dumped before each deploy."""
    inv = inventory.load(write(tmp_path, GOOD.replace("infra: {compose:", "infra: {database: {service: db}, compose:")
                               .replace("    stacks:\n", "    backup: {before_deploy: true, keep: {daily: 14}}\n"
                                        "    stacks:\n", 1)))
    system = inv.host("vps1").systems[0]
    assert system.databases == [system.stacks[0]] and system.stacks[0].database == model.Database("db", None, ())
    assert system.backup == BackupPlan(Retention(last=3, daily=14, weekly=4, monthly=6), before_deploy=True)
    assert system.backup_stack("infra-20261126T020000Z") is system.stacks[0]
    assert system.backup_stack("infra-20261126T020000Z-2") is system.stacks[0]
    assert system.backup_stack("ems-20261126T020000Z") is None and system.backup_stack("infra-latest") is None
    assert inv.host("vps1").targets()[0].backups == "/root/ems_system/data/backups"


def backing_up(keys: str) -> str:
    """GOOD whose system has ``backup: {keys}``."""
    return GOOD.replace("    stacks:\n", f"    backup: {{{keys}}}\n    stacks:\n", 1)


def test_files_and_volumes_in_the_backups(tmp_path):
    """Seed 001's uploads and certificates, seed 002's volumes: parts named where they are copied to."""
    inv = inventory.load(write(tmp_path, backing_up(
        "paths: [data/uploads, './data/x/../certs', /root/infra/letsencrypt/], volumes: [storage, appdata]")))
    target = inv.host("vps1").targets()[0]
    assert target.system.backup.paths == ("data/uploads", "data/certs", "/root/infra/letsencrypt")
    assert target.file_parts() == [
        ("system/data/uploads", "/root/ems_system/data/uploads"), ("system/data/certs", "/root/ems_system/data/certs"),
        ("host/root/infra/letsencrypt", "/root/infra/letsencrypt"),
        ("volume/storage", ("ems_system-infra_storage", "ems_system-ems_storage", "storage")),
        ("volume/appdata", ("ems_system-infra_appdata", "ems_system-ems_appdata", "appdata"))]


@pytest.mark.parametrize("keys, message", [
    ("paths: [data]", "would copy data/backups (where the backups are written)"),
    ("paths: [data/backups/x]", "would copy data/backups"),
    ("paths: [.]", "must be a path inside the system's folder"),
    ("paths: ['..']", "must be a path inside the system's folder"),
    ("paths: [../other]", "must be a path inside the system's folder"),
    ("paths: [/]", "must be a normalised absolute path"),
    ("paths: [.secrets]", "the secrets' folder"),
    ("paths: [.secrets/github_token]", "the secrets' folder"),
    ("paths: [/root/ems_system/../x]", "must be a normalised absolute path"),
    ("paths: ['data/up loads']", "letters, digits and . _ @ + - only"),
    ("paths: ['data/$(reboot)']", "letters, digits"),
    ("paths: [\"data/\\x1b[2Jx\"]", "control characters"),
    ("paths: ['-rf']", None),
    ("paths: [data/uploads, data/uploads]", "listed twice"),
    ("paths: [data/uploads, data/uploads/a]", "one holds the other"),
    ("paths: [data/uploads/a, data/uploads]", "one holds the other"),
    ("paths: data/uploads", "must be a list"),
    ("volumes: ['../x']", "must be a list of volume names"),
    ("volumes: [a, a]", "listed twice"),
    ("volumes: ['-v']", "must be a list of volume names"),
    ("offsite: ['rest:https://user:secret@backup.example/r']", "restic repositories"),
    ("offsite: ['-o sftp.command=sh']", "restic repositories"),
    ("offsite: ['sftp:b@host:relative']", "restic repositories"),
    ("offsite: ['sftp:b@host:/r; reboot']", "restic repositories"),
    ("offsite: ['s3:https://h/b', 's3:https://h/b']", "listed twice"),
    ("offsite: [/srv/restic]", "restic repositories"),
    ("offsite: 'local:/mnt/usb'", "must be a list"),
    ("max_age: 26", "is not an age such as 26h"),
    ("max_age: 0h", "is not an age"),
    ("max_age: -1h", "is not an age"),
    ("max_age: '26 h'", "is not an age"),
    ("max_age: 1e9h", "is not an age"),
    ("max_age: '26h; reboot'", "is not an age"),
    ("max_age: 401d", "more than 400 days"),
])
def test_backup_paths_and_volumes_refuse_what_would_be_unsafe(tmp_path, keys, message):
    """Every hostile value is exit 2 with hosts.yml's line, before anything runs ('-rf' is a fine folder name:
    it reaches the host as one argument after the system's folder)."""
    if message is None:
        assert inventory.load(write(tmp_path, backing_up(keys))).host("vps1").systems[0].backup.paths == ("-rf",)
        return
    msg = error_of(write(tmp_path, backing_up(keys)))
    assert "hosts.yml:4" in msg and message in msg, msg


def test_offsite_repositories_of_every_kind(tmp_path):
    repos = ["sftp:backup@10.0.0.5:/srv/restic/ems", "sftp:vault:/r", "rest:https://backup.example:8000/ems/",
             "rest:http://10.200.9.2:8000/ems", "s3:https://s3.example/bucket/ems", "local:/mnt/usb/restic"]
    inv = inventory.load(write(tmp_path, backing_up(f"offsite: [{', '.join(repos)}]")))
    target = inv.host("vps1").targets()[0]
    assert target.system.backup.offsite == tuple(repos)
    assert target.restic_key == "/root/ems_system/.secrets/restic"


@pytest.mark.parametrize("age, seconds", [("90m", 5400), ("26h", 93600), ("8d", 691200), ("400d", 34560000)])
def test_max_age_in_minutes_hours_or_days(tmp_path, age, seconds):
    inv = inventory.load(write(tmp_path, backing_up(f"max_age: {age}")))
    assert inv.host("vps1").systems[0].backup.max_age == seconds


def test_the_token_file_and_a_stack_named_files_are_refused(tmp_path):
    text = backing_up("paths: [secrets]").replace("    stacks:\n", "    secrets: secrets/token\n    stacks:\n", 1)
    assert "(the token file)" in error_of(write(tmp_path, text))
    text = backing_up("volumes: [x]").replace("      ems:", "      files: {compose: f.yml}\n      ems:")
    assert "a stack named 'files'" in error_of(write(tmp_path, text))


def test_a_binary_stack(tmp_path):
    """Seed 003's Go binary under systemd: a stack of its own, its release folders beside its live path."""
    inv = inventory.load(write(tmp_path, GOOD.replace(
        "infra: {compose: repo/servers/infra/docker-compose.prod.yml}",
        "escala: {binary: {path: /opt/plantao/escala-plantao, unit: plantao.service, owner: 'opc:opc', "
        "unit_template: repo/deploy/plantao.service, certs: /opt/plantao/certs}, health: 'http://127.0.0.1:8080/health'}")))
    system = inv.host("vps1").systems[0]
    stack = system.stacks[0]
    assert stack.binary == model.Binary("/opt/plantao/escala-plantao", "plantao", "opc:opc", "0755", 5,
                                        "repo/deploy/plantao.service", "/opt/plantao/certs")
    assert (stack.compose, stack.wait, stack.binary.releases, stack.binary.unit_file) == \
        (None, 60, "/opt/plantao/releases", "/etc/systemd/system/plantao.service")
    assert system.versioned() == ["escala", "ems"] and [a.name for a in system.apps()] == ["ems"]
    assert inv.host("vps1").projects() == ["ems_system-ems"], "a binary is no compose project"


def test_malformed_yaml_names_the_line(tmp_path):
    path = write(tmp_path, GOOD.replace("hosts:\n", "hosts:\n  vps1: {address: [unclosed\n"))
    text = error_of(path)
    assert f"{path}:" in text and "not valid YAML" in text


def test_missing_file_is_a_clear_error(tmp_path):
    assert "inventory not found" in error_of(tmp_path / "nope.yml")


def test_hosts_d_adds_hosts_and_overrides_the_registry_partially(tmp_path):
    path = write(tmp_path, GOOD)
    write(tmp_path, "hosts:\n  box: {address: 10.0.0.2, systems: [ems_system], registry: {server: 'reg.local:5000'}}\n",
          "hosts.d/box.yml")
    host = inventory.load(path).host("box")
    assert host.registry.server == "reg.local:5000" and host.registry.username == "edumigsoft"
    assert inventory.load(path).host("vps1").registry.server == "ghcr.io"


def test_a_host_defined_in_two_files_is_refused(tmp_path):
    path = write(tmp_path, GOOD)
    extra = write(tmp_path, "hosts:\n  vps1: {address: 10.0.0.2, systems: [ems_system]}\n", "hosts.d/dup.yml")
    text = error_of(path)
    assert text.startswith(f"{extra}:2:") and "defined twice" in text


def test_registry_top_level_is_required(tmp_path):
    text = error_of(write(tmp_path, GOOD.replace("registry: {server: ghcr.io, username: edumigsoft}\n", "")))
    assert "registry is missing" in text


def test_inventory_path_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("FAB_INVENTORY", str(write(tmp_path, GOOD, "other.yml")))
    assert "vps1" in inventory.load().hosts


@pytest.mark.parametrize("legacy, key", [
    ("{repo: /root/ems_system/repo}", "repo"),                                  # the same folder
    ("{repo: /opt/ems, uploads: /root/ems_system/data}", "uploads"),            # the new one lies inside it
    ("{repo: /opt/ems, letsencrypt: /root/infra/letsencrypt/old}", "letsencrypt"),  # it lies inside the new one
])
def test_a_legacy_path_overlapping_its_new_location_is_refused(tmp_path, legacy, key):
    """Otherwise the copy is a no-op and --remove-old deletes the live folder."""
    text = GOOD.replace("systems: [ems_system]}", "systems: [ems_system]}\n  old: {address: x, systems: [ems_system], "
                        f"legacy: {{ems_system: {legacy}}}}}")
    error = error_of(write(tmp_path, text))
    assert error.startswith(f"{tmp_path / 'hosts.yml'}:9: ") and f"legacy {key}" in error and "live data" in error


@pytest.mark.parametrize("text, line, phrase", [
    ("a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
     "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
     "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: [*e, *e, *e, *e, *e, *e, *e, *e, *e]\n", 1, "alias bomb"),
    (GOOD + "  v2: !!python/object/apply:os.system ['id']\n", 9, "YAML tag"),
    (GOOD.replace("hosts:\n", "base: &b {address: x}\nhosts:\n") + "  v2: {<<: *b, systems: [ems_system]}\n", 10,
     "a key must be a plain name"),
    (GOOD + "  ? [a, b]\n  : {address: x}\n", 9, "a key must be a plain name"),
    ("x:" + " [" * 40 + "]" * 40 + "\n", 1, "nested deeper"),
    ("x: " + "[" * 5000 + "]" * 5000 + "\n", 1, "nested deeper"),          # (a RecursionError, exit 1)
    ("registry: {server: a, username: b}\nsystems: {}\x00\n", 2, "character U+0000 is not allowed"),
    (GOOD + "# " + "x" * (1 << 20) + "\n", 1, "larger than"),
])
def test_hostile_yaml_is_a_file_line_error_not_a_crash(tmp_path, text, line, phrase):
    path = write(tmp_path, text)
    error = error_of(path)
    assert error.startswith(f"{path}:{line}: ") and phrase in error, error


def test_bytes_that_are_not_utf8_name_their_line(tmp_path):
    path = tmp_path / "hosts.yml"
    path.write_bytes(GOOD.encode() + b"  v2: {address: \xff}\n")
    assert error_of(path).startswith(f"{path}:9: not valid UTF-8")


def test_plain_aliases_for_shared_settings_are_fine(tmp_path):
    text = GOOD + \
        "  vps2: {address: 203.0.113.11, systems: [ems_system], identity: &key ~/.ssh/deploy}\n" \
        "  vps3: {address: 203.0.113.12, systems: [ems_system], identity: *key}\n"
    inv = inventory.load(write(tmp_path, text))
    assert inv.host("vps3").identity == inv.host("vps2").identity


# Seed 002's five servers: PostgreSQL on en4, its replica on en5, backends on en1-3 (group app), nginx on en1.
FLEET = """\
registry: {server: ghcr.io, username: edumigsoft}
groups:
  app: [en1, en2, en3]
systems:
  enlevohub:
    stacks:
      db: {compose: repo/deploy/db.yml, hosts: en4}
      replica: {compose: repo/deploy/replica.yml, hosts: [en5]}
      backend: {compose: repo/deploy/backend.yml, image: edumigsoft/enlevohub-backend, hosts: [app]}
      frontend: {compose: repo/deploy/frontend.yml, hosts: [en1]}
hosts:
  en1: {address: 10.0.0.1, systems: [enlevohub]}
  en2: {address: 10.0.0.2, systems: [enlevohub]}
  en3: {address: 10.0.0.3, systems: [enlevohub]}
  en4: {address: 10.0.0.4, systems: [enlevohub]}
  en5: {address: 10.0.0.5, systems: [enlevohub]}
"""


def test_groups_and_placement_give_each_host_its_stacks_in_the_systems_order(tmp_path):
    inv = inventory.load(write(tmp_path, FLEET))
    placed = {name: [s.name for s in h.systems[0].stacks] for name, h in inv.hosts.items()}
    assert placed == {"en1": ["backend", "frontend"], "en2": ["backend"], "en3": ["backend"], "en4": ["db"],
                      "en5": ["replica"]}
    assert [h.name for h in inv.choose(None, "app", False)] == ["en1", "en2", "en3"]
    assert [h.name for h in inv.choose(["en4", "en1", "en4"], None, False)] == ["en4", "en1"]
    assert len(inv.choose(None, None, True)) == 5
    assert [inv.order("enlevohub", s) for s in ("db", "replica", "backend", "frontend")] == [0, 1, 2, 3]
    en2 = inv.host("en2").systems[0]
    assert [s.name for s in en2.selected(["frontend"])] == []    # placed elsewhere: not an unknown stack
    with pytest.raises(ToolError, match="no stack nginx"):
        en2.selected(["nginx"])


@pytest.mark.parametrize("args, message", [
    ((["en1"], "app", False), "give one of --host, --group and --all"),
    ((None, "web", False), "unknown group 'web'.*has app"),
    ((None, None, False), "say which host: --host NAME"),
])
def test_choosing_hosts_refuses_what_is_unclear(tmp_path, args, message):
    inv = inventory.load(write(tmp_path, FLEET))
    with pytest.raises(ToolError, match=message) as e:
        inv.choose(*args)
    assert e.value.code == BAD_INPUT


@pytest.mark.parametrize("old, new, line, message", [
    ("app: [en1, en2, en3]", "app: [en1, en9]", 3, "group 'app' lists unknown host 'en9'"),
    ("app: [en1, en2, en3]", "app: [en1, en1]", 3, "lists host 'en1' twice"),
    ("app: [en1, en2, en3]", "en1: [en2]", 3, "group 'en1' has the name of a host"),
    ("app: [en1, en2, en3]", "app: []", 3, "needs a list of hosts"),
    ("hosts: en4}", "hosts: web}", 7, "placed on 'web', which is neither a host nor a group"),
    ("hosts: [en5]}", "hosts: [{x: 1}]}", 8, "hosts must be a host or group name"),
    ("en5: {address: 10.0.0.5, systems: [enlevohub]}", "en5: {address: 10.0.0.5, systems: [other]}", 9,
     "placed on host 'en5', which does not run system 'enlevohub'"),
    ("  en5: {address: 10.0.0.5, systems: [enlevohub]}\n",
     "  en5: {address: 10.0.0.5, systems: [enlevohub]}\n  en6: {address: 10.0.0.6, systems: [enlevohub]}\n", 17,
     "host 'en6' runs system 'enlevohub', but none of its stacks is placed on it"),
])
def test_placement_errors_name_file_line_and_problem(tmp_path, old, new, line, message):
    text = FLEET.replace(old, new)
    if "other" in new:
        text = text.replace("systems:\n", "systems:\n  other: {stacks: {x: {compose: x.yml}}}\n", 1)
    msg = error_of(write(tmp_path, text))
    assert f"hosts.yml:{line}" in msg and message in msg, msg


TOGETHER = GOOD.replace("hosts:\n", "    together: [[infra, ems]]\nhosts:\n")


def test_independent_stacks_are_declared_together(tmp_path):
    assert inventory.load(write(tmp_path, TOGETHER)).host("vps1").systems[0].together == (("infra", "ems"),)


@pytest.mark.parametrize("value, message", [
    ("[[infra]]", "lists two or more stacks"), ("[[infra, web]]", "names web, not a stack of this system"),
    ("[[infra, infra]]", "in together: once at most"), ("infra", "must be a list of lists"),
])
def test_together_errors_name_file_line_and_problem(tmp_path, value, message):
    msg = error_of(write(tmp_path, TOGETHER.replace("[[infra, ems]]", value)))
    assert "hosts.yml:7" in msg and message in msg, msg


def test_together_stacks_must_be_next_to_each_other(tmp_path):
    text = GOOD.replace("      ems:", "      mid: {compose: mid.yml}\n      ems:").replace(
        "hosts:\n", "    together: [[infra, ems]]\nhosts:\n")
    assert "must be next to each other" in error_of(write(tmp_path, text))


@pytest.mark.parametrize("keys, expected", [
    ("rollout: stop-first", None),
    ("rollout: start-first", StartFirst(3, 0, (), None)),
    ("rollout: {strategy: start-first, drain: 5, batch: 1, shared_volumes: [uploads]}", StartFirst(5, 1, ("uploads",), None)),
    ("rollout: {drain: 0}", StartFirst(0, 0, (), None)),
    ("rollout: {nginx: {service: web, upstreams: {backend: 3001, api: 8080}}}",
     StartFirst(3, 0, (), NginxPool("web", (("backend", 3001), ("api", 8080)), "upstreams"))),
    ("rollout: {nginx: {service: web, upstreams: {backend: 3001}, folder: pool}}",
     StartFirst(3, 0, (), NginxPool("web", (("backend", 3001),), "pool"))),
])
def test_a_stacks_rollout_is_stop_first_unless_it_says_start_first(tmp_path, keys, expected):
    stack = inventory.load(write(tmp_path, first_stack_with(keys))).host("vps1").systems[0].stacks[0]
    assert stack.start_first == expected


@pytest.mark.parametrize("keys, message", [
    ("rollout: blue-green", "rollout must be stop-first (stop the old containers, then start the new) or start-first"),
    ("rollout: {strategy: start-first, drain: -1}", "drain must be a whole number from 0 to 300"),
    ("rollout: {batch: 1000}", "batch must be a whole number from 0 to 100"),
    ("rollout: {shared_volumes: uploads}", "shared_volumes must be a list of the compose file's volume names"),
    ("rollout: {strategy: stop-first, drain: 3}", "drain, batch, shared_volumes and nginx are settings of rollout: start-first"),
    ("rollout: {surge: 2}", "unknown key 'surge'"),
    ("rollout: {nginx: {service: web}}", "rollout.nginx.upstreams is missing"),
    ("rollout: {nginx: {service: web, upstreams: {}}}", "upstreams must name the services nginx proxies to"),
    ("rollout: {nginx: {service: web, upstreams: {backend: 0}}}", "must be a whole number from 1 to 65535"),
    ("rollout: {nginx: {service: web, upstreams: {web: 80}}}", "nginx's own service web cannot be one of its upstreams"),
    ("rollout: {nginx: {service: web, upstreams: {b: 1}, folder: ../up}}", "must be a folder name beside the compose file"),
    ("rollout: {nginx: {upstreams: {b: 1}}}", "rollout.nginx.service is missing"),
    ("rollout: {strategy: stop-first, nginx: {service: web, upstreams: {b: 1}}}", "drain, batch, shared_volumes and nginx are settings of rollout: start-first"),
])
def test_rollout_errors_name_file_line_and_problem(tmp_path, keys, message):
    msg = error_of(write(tmp_path, first_stack_with(keys)))
    assert "hosts.yml:5" in msg and message in msg, msg


def test_a_binary_stack_has_no_rollout(tmp_path):
    text = binary("path: /opt/p/p, unit: p}").replace("infra: {binary:", "infra: {rollout: start-first, binary:")
    msg = error_of(write(tmp_path, text))
    assert "unknown key 'rollout'" in msg


def test_two_binaries_whose_live_paths_share_a_folder_are_refused(tmp_path):
    """They would share releases/: pruning one deleted the other's live release, and one tag deployed to both
    made the second install remove the first's releases/v1 (issue 20)."""
    text = GOOD.replace("infra: {compose: repo/servers/infra/docker-compose.prod.yml}",
                        "escala: {binary: {path: /opt/plantao/escala-plantao, unit: plantao}}\n"
                        "      worker: {binary: {path: /opt/plantao/worker, unit: worker}}")
    msg = error_of(write(tmp_path, text))
    assert "binary stacks ems_system/escala and ems_system/worker would share /opt/plantao/releases" in msg, msg
    fine = text.replace("/opt/plantao/worker", "/opt/worker/worker")
    assert len(inventory.load(write(tmp_path, fine)).host("vps1").systems[0].binaries()) == 2


@pytest.mark.parametrize("keys, message", [
    ("prune: {keep: 1}", "from 2 to 1000"),
    ("prune: {keep: 1001}", "from 2 to 1000"),
    ("prune: {keep: '5'}", "must be a whole number"),
    ("prune: {keep: true}", "must be a whole number"),
    ("prune: {keep: -5}", "from 2 to 1000"),
    ("prune: {keep: 5, every: 1}", "every"),
    ("prune: 5", "prune"),
])
def test_a_bad_prune_is_refused_with_its_line(tmp_path, keys, message):
    text = GOOD.replace("  ems_system:\n", f"  ems_system:\n    {keys}\n")
    said = error_of(write(tmp_path, text))
    assert message in said and "hosts.yml:4" in said, said


def test_prune_keep_reaches_the_system(tmp_path):
    text = GOOD.replace("  ems_system:\n", "  ems_system:\n    prune: {keep: 3}\n")
    assert inventory.load(write(tmp_path, text)).host("vps1").systems[0].prune == 3
    assert inventory.load(write(tmp_path, GOOD)).host("vps1").systems[0].prune is None
