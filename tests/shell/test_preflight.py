"""Preflight, run whole in the deploy program under bash with stub docker (fast tier): each stack's compose
config with this release's pins, its external networks and volumes, and the traces of a stack started by hand
(taking over a VPS), all checked before anything that runs is stopped; and a `compose up` that fails for a
reason other than health, told apart from a failed gate."""
from dataclasses import replace

from tasks.core.programs.deploy import deploy_program
from tasks.core.programs.protocol import Code

from .conftest import REGISTRY
from .test_deploy_program import OLD, deploy, enlevohub, history, intent, pulls_answer, ups

INFRA = "compose -p ems_system-infra *"
PS_FORMAT = "ps -a --format *"


def refused(lab, run, *words):
    """The deploy was refused with every one of ``words`` in its message, and nothing ran or was recorded."""
    assert run.code == Code.REFUSED, run.stdout + run.stderr
    assert all(w in run.error for w in words), run.error
    assert run.error.endswith("nothing was changed")
    assert ups(lab) == [] and not (lab.state / "releases.jsonl").exists()
    assert not (lab.state / "lock").exists()


def test_a_variable_the_compose_file_requires_refuses_before_anything_stops(lab):
    pulls_answer(lab)
    lab.answer("docker", f"{INFRA} config", "error while interpolating services.db.environment.PASSWORD: "
               "required variable DB_PASSWORD is missing a value: set it in .env\n", code=1, stderr=True)
    refused(lab, deploy(lab), "stack infra: docker compose config fails: error while interpolating",
            "required variable DB_PASSWORD is missing")


def test_the_config_is_read_with_this_releases_pin_not_the_old_env(lab):
    """The .env still names the running release until the stack goes live: compose config must see the new one."""
    pulls_answer(lab)
    (lab.root / "ems_system/repo/ems/.env").write_text(f"IMAGE_TAG={OLD}\n")
    assert deploy(lab).code == 0
    config = {c.argv[3]: c.env for c in lab.calls("docker") if c.argv[1:2] == ["compose"] and c.argv[-1] == "config"}
    new = "v1.4.3@sha256:aadae6505d8789c4190fc92bf05ad2797d48b5ea9b51d3cacd98d32ee4a5d473"
    assert config == {"ems_system-infra": {}, "ems_system-ems": {"IMAGE_TAG": new},
                      "ems_system-sms": {"IMAGE_TAG": new}}


def test_a_missing_external_network_is_named_with_the_setup_hint(lab):
    pulls_answer(lab)
    lab.answer("docker", f"{INFRA} config", captured="compose-config-postgres.yml")
    lab.answer("docker", "network inspect ems_net", code=1)
    refused(lab, deploy(lab), "stack infra: external network ems_net does not exist (fab setup creates it)")


def test_a_new_volume_while_a_hand_started_project_holds_the_data_is_refused(lab):
    """Seed 001's PostgreSQL started by hand as project "postgres": the tool's own project name would give it a
    new, empty volume. Refused with the line that adopts the old project; nothing changed."""
    data = lab.path / "volumes/postgres_pgdata"
    (data / "base").mkdir(parents=True)
    pulls_answer(lab)
    lab.answer("docker", f"{INFRA} config", captured="compose-config-postgres.yml")
    lab.answer("docker", "volume inspect ems_system-infra_pgdata", code=1)
    lab.answer("docker", "volume ls --filter label=com.docker.compose.volume=pgdata *", "postgres_pgdata postgres\n")
    lab.answer("docker", "volume inspect --format * postgres_pgdata", f"{data}\n")
    refused(lab, deploy(lab), "stack infra: it would start on a new, empty volume ems_system-infra_pgdata while "
            "volume postgres_pgdata of compose project postgres holds data: adopt it with 'project: postgres'")


def test_an_empty_volume_elsewhere_or_a_volume_of_the_tools_own_stacks_does_not_refuse(lab):
    (lab.path / "volumes/empty").mkdir(parents=True)
    pulls_answer(lab)
    lab.answer("docker", f"{INFRA} config", captured="compose-config-postgres.yml")
    lab.answer("docker", "volume inspect ems_system-infra_pgdata", code=1)
    lab.answer("docker", "volume ls --filter label=com.docker.compose.volume=pgdata *",
               "old_pgdata old\nems_system-sms_pgdata ems_system-sms\n")
    lab.answer("docker", "volume inspect --format * old_pgdata", f"{lab.path}/volumes/empty\n")
    lab.answer("docker", "image inspect --format {{.Id}} postgres:15", "sha256:5\n")   # present: not pulled
    run = deploy(lab)
    assert run.code == 0, run.stdout
    assert {"stack": "infra", "name": "ems_system-infra_pgdata", "result": "new"} in run.result.all("volume")


def test_a_stack_started_by_hand_in_its_folder_is_found_by_its_compose_labels(lab):
    pulls_answer(lab)
    folder = lab.root / "ems_system/repo/ems"
    lab.answer("docker", PS_FORMAT, f"container-ems-1|container|{folder}\nems_system-sms-sms-1|ems_system-sms|x\n")
    refused(lab, deploy(lab), f"stack ems: {folder} already runs as compose project container "
            "(container container-ems-1): adopt it with 'project: container'")


def test_a_container_name_taken_outside_the_tool_is_named(lab):
    pulls_answer(lab)
    lab.answer("docker", f"{INFRA} config", captured="compose-config-postgres.yml")
    lab.answer("docker", PS_FORMAT, "ems_postgres||\n")
    refused(lab, deploy(lab), "stack infra: a container named ems_postgres exists outside compose")
    lab.answer("docker", PS_FORMAT, "ems_postgres|postgres|/opt/ems/postgres\n")
    refused(lab, deploy(lab), "container ems_postgres already runs as compose project postgres: adopt it")


def test_every_problem_of_every_stack_is_named_at_once(lab):
    pulls_answer(lab)
    lab.answer("docker", f"{INFRA} config", captured="compose-config-postgres.yml")
    lab.answer("docker", "network inspect ems_net", code=1)
    lab.answer("docker", "compose -p ems_system-sms * config", "yaml: line 3: did not find expected key\n", code=1,
               stderr=True)
    refused(lab, deploy(lab), "stack infra: external network ems_net", "stack sms: docker compose config fails: "
            "yaml: line 3")


def test_unset_variables_are_reported_not_refused(lab):
    pulls_answer(lab)
    lab.answer("docker", "compose -p ems_system-ems * config",
               'time="2026-11-26T09:00:00Z" level=warning msg="The \\"SMTP_HOST\\" variable is not set. '
               'Defaulting to a blank string."\n', stderr=True)
    run = deploy(lab)
    assert run.code == 0
    assert run.result.all("unset") == [{"stack": "ems", "variable": "SMTP_HOST"}]


def test_a_compose_failure_that_is_not_health_has_its_own_code_and_the_previous_release_back(lab):
    """A container-name conflict at `up` (preflight cannot see everything): not reported as a failed gate."""
    pulls_answer(lab)
    lab.state.mkdir()
    (lab.state / "current").write_text(f"release r0\ntag v1.4.2\npin ems {OLD}\npin sms {OLD}\n")
    lab.answer("docker", "compose -p ems_system-ems * up *", 'Error response from daemon: Conflict. The container '
               'name "/ems" is already in use by container "3f2a". You have to remove (or rename) that container.\n',
               code=1, once=True)
    run = deploy(lab)
    assert run.code == Code.NOT_STARTED, run.stdout
    assert "v1.4.3 could not be started (compose failed, not a health check: ems: Error response from daemon: " \
           "Conflict." in run.error and "the previous good release v1.4.2 is back and healthy" in run.error
    assert [h["state"] for h in history(lab)] == ["deploying", "failed"]


def test_a_stack_without_a_pin_that_fails_is_not_reported_back_unless_it_came_back(lab):
    """infra has no pin to go back to: it is brought up again as it was; if it fails again the host needs a
    look (it used to be reported "back and healthy")."""
    pulls_answer(lab)
    lab.state.mkdir()
    (lab.state / "current").write_text(f"release r0\ntag v1.4.2\npin ems {OLD}\npin sms {OLD}\n")
    lab.answer("docker", f"{INFRA} up *", "Error response from daemon: driver failed programming external "
               "connectivity: Bind for 127.0.0.1:443 failed: port is already allocated\n", code=1)
    infra = "ps -aq --filter label=com.docker.compose.project=ems_system-infra *"
    lab.answer("docker", infra, "b1\n")   # compose replaced its container before it failed: not as it was
    lab.answer("docker", infra, "a1\n", once=True)
    lab.answer("docker", "inspect --format {{.Name}}* b1", "/ems_system-infra-infra-1 created none 0 no\n")
    run = deploy(lab)
    assert run.code == Code.BROKEN, run.stdout
    assert ups(lab) == ["compose -p ems_system-infra"] * 2
    assert "could not be started (compose failed, not a health check: infra: " in run.error


def test_replicas_of_a_service_that_can_run_once_only_are_refused(lab):
    """Seed 002 scales its backend: with a container_name or a fixed host port, compose cannot start the
    second replica, so it is refused before anything stops."""
    t = enlevohub(lab)
    lab.answer("docker", "compose -p enlevohub-app * config", "name: enlevohub-app\nservices:\n  backend:\n"
               "    container_name: enlevohub_backend\n    image: x\n    ports:\n      - mode: ingress\n"
               "        host_ip: 127.0.0.1\n        target: 8080\n        published: \"8080\"\n        protocol: tcp\n"
               "  frontend:\n    image: y\n    ports:\n      - mode: ingress\n        target: 80\n"
               "        published: \"80\"\n")
    run = lab.run(deploy_program(t, list(t.system.stacks), intent(tags={"backend": "v2", "frontend": "v1"})))
    assert run.code == Code.REFUSED, run.stdout
    assert "stack app: service backend sets container_name enlevohub_backend: it cannot run 3 replicas" in run.error
    assert "stack app: service backend publishes host port 8080: it cannot run 3 replicas" in run.error
    assert "frontend" not in run.error, "one frontend may publish its port"


def test_a_dockerd_restarted_mid_up_is_waited_for_and_the_stack_tried_again(lab):
    pulls_answer(lab)
    lab.answer("docker", f"{INFRA} up *", "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. "
               "Is the docker daemon running?\n", code=1, once=True)
    lab.answer("docker", "info", "Cannot connect to the Docker daemon\n", code=1, once=True)
    run = deploy(lab)
    assert run.code == 0, run.stdout
    assert ups(lab) == ["compose -p ems_system-infra", "compose -p ems_system-infra", "compose -p ems_system-ems",
                        "compose -p ems_system-sms"]
    assert lab.commands("docker").count("info") == 2, "asked until it answered"


def test_require_healthcheck_refuses_a_pinned_service_without_one(lab):
    """EVAonline's worker with no healthcheck: with require_healthcheck the deploy is refused before anything
    stops (a healthcheck in the compose file or in the image counts; other images are not asked about)."""
    pulls_answer(lab)
    t = lab.target
    strict = [replace(s, require_healthcheck=True) for s in t.system.stacks]
    pin = "v1.4.3@sha256:aadae6505d8789c4190fc92bf05ad2797d48b5ea9b51d3cacd98d32ee4a5d473"
    lab.answer("docker", "compose -p ems_system-sms * config", "name: ems_system-sms\nservices:\n  worker:\n"
               f"    image: {REGISTRY}/edumigsoft/sms_server:{pin}\n  beat:\n"
               f"    image: {REGISTRY}/edumigsoft/sms_server:{pin}\n    healthcheck:\n      test: [CMD, x]\n"
               "  baked:\n    image: x/baked@sha256:1\n  redis:\n    image: redis:7-alpine\n")
    lab.answer("docker", "image inspect --format * *sms_server*", "\n")   # nor does its image bring one
    run = lab.run(deploy_program(t, strict, intent()))
    assert run.code == Code.REFUSED, run.stdout
    assert "stack sms: service worker has no healthcheck (require_healthcheck: true)" in run.error
    assert "beat" not in run.error and "redis" not in run.error and "baked" not in run.error
    lab.answer("docker", "image inspect --format * *sms_server*", "yes\n")  # the image brings its own
    assert lab.run(deploy_program(t, strict, intent())).code == 0


START_FIRST_CONFIG = ("name: ems_system-ems\nservices:\n  ems:\n    container_name: ems_server_app\n    image: x\n"
                      "    healthcheck:\n      test:\n        - CMD-SHELL\n        - test ! -f /tmp/drain && x\n    ports:\n      - mode: ingress\n        target: 8080\n"
                      "        published: \"8080\"\n        protocol: tcp\n    volumes:\n      - type: volume\n"
                      "        source: uploads\n        target: /data/uploads\n        volume: {}\n"
                      "      - type: volume\n        source: certs\n        target: /certs\n        read_only: true\n"
                      "        volume: {}\n      - type: bind\n        source: /root/logs\n        target: /logs\n"
                      "  sidecar:\n    image: y\nvolumes:\n  uploads:\n    name: ems_uploads\n  certs:\n"
                      "    name: certs\n")


def start_first(lab, **settings):
    from tasks.core.model import StartFirst
    t = lab.target
    return t, [replace(s, start_first=StartFirst(**{**dict(drain=3, batch=0, shared_volumes=(), nginx=None), **settings})) if s.name == "ems" else s for s in t.system.stacks]


def test_start_first_refuses_what_cannot_run_twice_or_share_a_volume(lab):
    """rollout: start-first runs the new containers beside the old: a container_name, a host port, a named volume
    both would write, a service without a healthcheck (the proxy needs one to know when to send traffic) are
    refused before anything stops; a volume mounted read-only, a bind mount and another stack are not."""
    pulls_answer(lab)
    lab.answer("docker", "compose -p ems_system-ems * config", START_FIRST_CONFIG)
    lab.answer("docker", "image inspect --format * y", "\n")   # nor does the sidecar's image bring one
    t, stacks = start_first(lab)
    run = lab.run(deploy_program(t, stacks, intent()))
    assert run.code == Code.REFUSED, run.stdout
    for problem in ("stack ems: service ems sets container_name ems_server_app: rollout: start-first runs",
                    "stack ems: service ems publishes host port 8080: rollout: start-first runs",
                    "stack ems: service ems writes volume uploads: with rollout: start-first",
                    "stack ems: service sidecar has no healthcheck: rollout: start-first"):
        assert problem in run.error, run.error
    assert "certs" not in run.error and "/root/logs" not in run.error and "stack sms" not in run.error



def test_start_first_needs_a_healthcheck_that_fails_on_the_drain_file(lab):
    """An old container leaves Traefik's pool when Docker calls it unhealthy: its healthcheck must fail while
    /tmp/drain exists (the tool creates it), or the proxy would keep sending it requests until it stops."""
    pulls_answer(lab)
    lab.answer("docker", "compose -p ems_system-ems * config", START_FIRST_CONFIG.replace("test ! -f /tmp/drain && ", ""))
    lab.answer("docker", "image inspect --format * y", '["CMD","true"]\n')
    t, stacks = start_first(lab, shared_volumes=("uploads",))
    run = lab.run(deploy_program(t, stacks, intent()))
    assert run.code == Code.REFUSED
    assert "service ems: its healthcheck must fail while /tmp/drain exists" in run.error
    assert "service sidecar: its healthcheck must fail while /tmp/drain exists" in run.error


def test_two_images_reading_one_variable_are_refused_with_the_images_lines_to_write(lab):
    """Issue 18 item 4: seed 002's own file under `image:` (backend and frontend both read IMAGE_TAG): the
    frontend would be started with the backend's digest (the deploy ended in exit 6). Refused before anything
    is stopped, with the images: lines; an image line of the app that does not read its variable too."""
    pulls_answer(lab)
    pin = "v1.4.3@sha256:aadae6505d8789c4190fc92bf05ad2797d48b5ea9b51d3cacd98d32ee4a5d473"
    lab.answer("docker", "compose -p ems_system-ems * config", "name: ems_system-ems\nservices:\n  ems:\n"
               f"    image: {REGISTRY}/edumigsoft/ems_server:{pin}\n  frontend:\n"
               f"    image: {REGISTRY}/edumigsoft/ems_front:{pin}\n  worker:\n"
               f"    image: {REGISTRY}/edumigsoft/ems_server:latest\n  db:\n    image: postgres:15\n")
    run = deploy(lab)
    refused(lab, run, f"stack ems: service frontend would run {REGISTRY}/edumigsoft/ems_front with the digest of "
            "app ems (its image line reads $IMAGE_TAG too)",
            f"images: {{ems: {{image: {REGISTRY}/edumigsoft/ems_server, tag_var: IMAGE_TAG}}, ems_front: "
            f"{{image: {REGISTRY}/edumigsoft/ems_front, tag_var: OTHER_TAG}}}}",
            f"stack ems: service worker runs {REGISTRY}/edumigsoft/ems_server:latest, not app ems's release")
    assert "service ems " not in run.error and "db" not in run.error


def test_image_names_lose_their_tag_and_digest_but_keep_a_registry_port(lab):
    script = ('for r in 10.0.0.1:5000/a/b:v1@sha256:' + "1" * 64 + ' 10.0.0.1:5000/a/b postgres:15 '
              'x/y@sha256:' + "2" * 64 + '; do image_name "$r"; echo; done')
    run = lab.snippet(script, {"image_name"})
    assert run.stdout.splitlines() == ["10.0.0.1:5000/a/b", "10.0.0.1:5000/a/b", "postgres", "x/y"]


def test_a_project_two_stacks_would_claim_is_not_offered_for_adoption(lab):
    """Issue 18 item 7: ems and sms started by hand in folders both named `container`: adopting `project:
    container` for both is what hosts.yml refuses (two stacks, one project); the advice is to stop them and let
    the tool start its own projects."""
    pulls_answer(lab)
    for app in ("ems", "sms"):
        (lab.root / f"ems_system/repo/{app}/container").mkdir()
    t = lab.target
    moved = replace(t, system=replace(t.system, stacks=tuple(
        replace(s, compose=f"repo/{s.name}/container/docker-compose.yml") if s.apps else s for s in t.system.stacks)))
    for s in moved.system.stacks:
        (lab.root / "ems_system" / s.compose).write_text("services: {}\n")
    ems, sms = (lab.root / f"ems_system/repo/{a}/container" for a in ("ems", "sms"))
    lab.answer("docker", PS_FORMAT, f"container-ems-1|container|{ems}\ncontainer-sms-1|container|{sms}\n")
    run = lab.run(deploy_program(moved, list(moved.system.stacks), intent()))
    refused(lab, run, f"stack ems: {ems} already runs as compose project container (container container-ems-1): "
            f"stack sms would claim project container too, so it cannot be adopted: stop it (docker compose -p "
            f"container down in {ems}: its containers go, its volumes stay), then deploy: the tool starts its own "
            "project ems_system-ems", "stack sms would claim", "stack ems would claim")
    assert "adopt it" not in run.error


def test_replicas_scaled_by_hand_are_said_before_the_deploy_brings_them_back(lab):
    """Issue 18 item 9: `compose up --scale sms=3` by hand, no scale: in hosts.yml: the deploy brings sms back
    to one (or to the compose file's deploy.replicas) and now says so; scale: keeps them, and says nothing."""
    pulls_answer(lab)
    ps = "".join(f"ems_system-sms-sms-{i}|ems_system-sms|x|sms|running\n" for i in (1, 2, 3))
    lab.answer("docker", PS_FORMAT, ps + "ems_system-sms-sms-4|ems_system-sms|x|sms|exited\n")
    run = deploy(lab)
    assert run.code == 0, run.stdout
    assert "stack sms: service sms runs 3 containers, scaled by hand: this deploy brings it to 1 " \
           "(scale: {sms: 3} in hosts.yml keeps them)" in run.stdout
    lab.answer("docker", "compose -p ems_system-sms * config", "name: ems_system-sms\nservices:\n  sms:\n"
               "    image: x\n    deploy:\n      replicas: 2\n")
    assert "brings it to 2 " in deploy(lab).stdout
    t = lab.target
    scaled = [replace(s, scale=(("sms", 3),)) if s.name == "sms" else s for s in t.system.stacks]
    assert "scaled by hand" not in lab.run(deploy_program(t, scaled, intent())).stdout


def test_an_image_of_an_unpinned_stack_the_registry_lacks_fails_as_a_pull_before_anything_stops(lab):
    """Issue 18 item 5: infra edited to a Traefik tag the registry lacks failed at `compose up`, its restore
    failed the same way, and the tool said exit 6 "look at the host now" while everything still ran. The
    missing image is pulled in preflight: exit 4, nothing stopped; an image the host has is not pulled."""
    pulls_answer(lab)
    lab.answer("docker", f"{INFRA} config", "name: ems_system-infra\nservices:\n  traefik:\n    image: traefik:v9\n"
               "  db:\n    image: postgres:15\n  web:\n    build:\n      context: .\n    image: local/web\n")
    lab.answer("docker", "image inspect --format {{.Id}} *", code=1)
    lab.answer("docker", "image inspect --format {{.Id}} postgres:15", "sha256:1\n")
    lab.answer("docker", "pull traefik:v9", "Error response from daemon: manifest for traefik:v9 not found: "
               "manifest unknown\n", code=1, stderr=True)
    run = deploy(lab)
    assert run.code == Code.PULL, run.stdout
    assert "pull of traefik:v9 failed: Error response from daemon: manifest for traefik:v9 not found" in run.error
    assert run.error.endswith("nothing was changed") and ups(lab) == []
    pulls = [c for c in lab.commands("docker") if c.startswith("pull ") and "edumigsoft" not in c]
    assert pulls == ["pull traefik:v9"], "postgres:15 is there; local/web is built by compose"


def test_a_stack_without_a_pin_whose_containers_compose_never_replaced_is_not_a_broken_host(lab):
    """Issue 18 item 5: compose failed at infra's `up` before replacing anything (its containers are the ones
    that ran before, running and healthy): nothing to put back, so the previous release is back (exit 9), not
    "look at the host now" (exit 6) after a second `up` that fails the same way."""
    pulls_answer(lab)
    lab.state.mkdir()
    (lab.state / "current").write_text(f"release r0\ntag v1.4.2\npin ems {OLD}\npin sms {OLD}\n")
    lab.answer("docker", "ps -aq --filter label=com.docker.compose.project=ems_system-infra *", "c1\n")
    lab.answer("docker", "inspect --format * c1", "/ems_system-infra-traefik-1 running healthy 0 always\n")
    lab.answer("docker", f"{INFRA} up *", "Error response from daemon: driver failed programming external "
               "connectivity: Bind for 127.0.0.1:443 failed: port is already allocated\n", code=1)
    run = deploy(lab)
    assert run.code == Code.NOT_STARTED, run.stdout
    assert ups(lab) == ["compose -p ems_system-infra"], "not brought up a second time"
    assert "compose replaced none of its containers: they run as they did" in run.stdout
    assert "the previous good release v1.4.2 is back and healthy" in run.error
