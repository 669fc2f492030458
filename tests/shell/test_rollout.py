"""The start-first rollout (sh/rollout.sh) in a deploy program under bash with stub docker (fast tier): new
containers beside the old, the old out of the proxy's pool before they stop (Traefik: the drain file and
Docker's health; nginx: the upstream blocks the tool writes and a graceful reload), and a new release that
never becomes healthy removed without ever having been in the pool. The end-to-end tier runs the real Traefik
and nginx (tests/e2e/test_examples.py)."""
from dataclasses import replace
from pathlib import Path

from tasks.core.model import NginxPool
from tasks.core.programs.deploy import deploy_program
from tasks.core.programs.protocol import Code

from .test_deploy_program import intent, pulls_answer
from .test_preflight import START_FIRST_CONFIG, start_first

SERVICE_PS = "ps -q --filter label=com.docker.compose.project=ems_system-ems --filter label=com.docker.compose.service={} *"


def rolling(lab, ps=("o1", "o1", "o1 n1"), **settings):
    """A start-first ems stack running one old container o1; compose starts n1 beside it. ``ps``: what each
    look at the service's containers finds, in turn (the old ones, those before the scale, all after it), then
    n1 alone."""
    pulls_answer(lab)
    lab.answer("docker", "compose -p ems_system-ems * config --services", "ems\n")
    lab.answer("docker", SERVICE_PS.format("ems"), "n1\n")
    for out in reversed(ps):   # (later rules answer first; newest first, as docker ps lists them)
        lab.answer("docker", SERVICE_PS.format("ems"), "\n".join(reversed(out.split())) + "\n", once=True)
    lab.answer("docker", "inspect --format {{.Name}}* n1", "/ems-2 running healthy 0 unless-stopped\n")
    lab.answer("docker", "inspect --format {{if .State.Health}}{{.State.Health.Status}}{{end}} o1", "unhealthy\n")
    lab.allow("docker", "cp *:/")                       # the drain file, into each old container
    lab.allow("docker", "stop o*")
    lab.allow("docker", "rm -f *")                      # the old ones once stopped (or new ones that failed)
    lab.answer("docker", "inspect --format {{.Name}} {{.State.ExitCode}} *", "/ems-1 0\n")   # stopped on SIGTERM
    return start_first(lab, drain=0, **settings)


def test_start_first_starts_the_new_container_beside_the_old_and_drains_the_old_before_it_stops(lab):
    t, stacks = rolling(lab)
    run = lab.run(deploy_program(t, stacks, intent()))
    assert run.code == 0, run.stdout + run.stderr
    calls = [c for c in lab.commands("docker") if c.split()[0] in ("compose", "cp", "stop", "rm")
             or c.startswith("inspect --format {{if")]
    ems = [c for c in calls if "ems_system-ems" in c or " o1" in c or " n1" in c or c.endswith("o1:/")]
    assert next(c for c in calls if c.startswith("cp ")).endswith("/. o1:/")
    rendering = f"compose -p ems_system-ems -f {lab.root}/ems_system/repo/ems/docker-compose.yml config"
    del ems[ems.index(rendering, 1)]   # (again once its .env has the new pin, in the background: for the record)
    assert ems == [
        rendering,
        f"compose -p ems_system-ems -f {lab.root}/ems_system/repo/ems/docker-compose.yml config --services",
        f"compose -p ems_system-ems -f {lab.root}/ems_system/repo/ems/docker-compose.yml up -d --no-deps "
        "--no-recreate --scale ems=2 ems",                       # n1 beside o1
        next(c for c in calls if c.startswith("cp ")),            # only once n1 is healthy: o1 told to drain
        "inspect --format {{if .State.Health}}{{.State.Health.Status}}{{end}} o1",   # out of the pool
        "stop o1", "rm -f o1",
        f"compose -p ems_system-ems -f {lab.root}/ems_system/repo/ems/docker-compose.yml up -d --remove-orphans"]


def test_an_old_container_that_had_to_be_killed_after_its_drain_is_named(lab):
    t, stacks = rolling(lab)
    lab.answer("docker", "inspect --format {{.Name}} {{.State.ExitCode}} o1", "/ems-1 137\n")
    run = lab.run(deploy_program(t, stacks, intent()))
    assert run.code == 0, run.stdout + run.stderr
    assert "ems: container ems-1 did not exit on SIGTERM within its stop_grace_period and was killed" in run.stdout


def test_a_dockerd_restarted_mid_rollout_is_waited_for_and_the_stack_rolled_again_not_recreated(lab):
    t, stacks = rolling(lab)
    lab.answer("docker", "compose -p ems_system-ems * config --services",
               "Cannot connect to the Docker daemon at unix:///var/run/docker.sock\n", code=1, once=True)
    run = lab.run(deploy_program(t, stacks, intent()))
    assert run.code == 0, run.stdout + run.stderr
    assert "dockerd is not answering: waiting for it (60 s), then ems once more" in run.stdout
    ems_ups = [c for c in lab.commands("docker") if c.startswith("compose -p ems_system-ems") and " up " in c]
    assert ems_ups[0].endswith("up -d --no-deps --no-recreate --scale ems=2 ems"), "rolled, not recreated"


def test_start_first_new_containers_that_never_become_healthy_are_removed_and_the_old_never_stopped(lab):
    t, stacks = rolling(lab)
    lab.answer("docker", "inspect --format {{.Name}}* n1", "/ems-2 running unhealthy 0 unless-stopped\n")
    lab.answer("docker", "logs --tail 30 ems-2", "migration 0042 failed\n")
    run = lab.run(deploy_program(t, stacks, intent()))
    assert run.code == Code.BROKEN and "container ems-2 is unhealthy" in run.stdout   # (a first release here)
    docker = lab.commands("docker")
    assert docker.index("logs --tail 30 ems-2") < docker.index("rm -f n1"), "read before it was removed"
    assert "@@info   | migration 0042 failed" in run.stdout
    assert "rm -f n1" in docker and "the new ems containers were removed before any traffic reached them" in run.stdout
    assert not [c for c in docker if c.startswith(("cp ", "stop o1", "rm -f o1"))], "o1 was never touched"


def test_the_doubled_containers_an_interrupted_rollout_left_are_replaced_by_the_next_one(lab):
    """A rollout killed between its scale and its drain leaves two ems containers for one replica: the next
    deploy starts one new container beside both and drains both out."""
    t, stacks = rolling(lab, ("o1 o2", "o1 o2", "o1 o2 n1"))
    lab.answer("docker", "inspect --format {{if .State.Health}}{{.State.Health.Status}}{{end}} o2", "unhealthy\n")
    run = lab.run(deploy_program(t, stacks, intent()))
    assert run.code == 0, run.stdout + run.stderr
    docker = lab.commands("docker")
    assert any(c.endswith("up -d --no-deps --no-recreate --scale ems=3 ems") for c in docker), "one beside the two"
    assert "stop o1 o2" in docker and "rm -f o1 o2" in docker


# -- nginx in front (seed 002): the tool writes the upstream blocks and reloads nginx ---------------------------------
NGINX = NginxPool("web", (("ems", 8080),), "upstreams")


def behind_nginx(lab, new_health="healthy"):
    """rolling() with nginx (service web, container w1) in front of ems: o1 (ems-1) runs, n1 (ems-2) starts."""
    # the block written first (o1), the old ones, those before the scale, all after it, all to add n1, all to
    # leave o1 out
    t, stacks = rolling(lab, ("o1", "o1", "o1", "o1 n1", "o1 n1", "o1 n1"), nginx=NGINX)
    folder = t.upstreams(next(s for s in stacks if s.name == "ems"))
    lab.answer("docker", "compose -p ems_system-ems * config", (
        "name: ems_system-ems\nservices:\n  ems:\n    image: x\n    healthcheck:\n      test:\n        - CMD\n"
        "        - wget\n  web:\n    image: nginx\n    ports:\n      - mode: ingress\n        target: 80\n"
        "        published: \"80\"\n        protocol: tcp\n    volumes:\n      - type: bind\n"
        f"        source: {folder}\n        target: /etc/nginx/upstreams\n        read_only: true\n"))
    lab.answer("docker", SERVICE_PS.format("web"), "w1\n")
    lab.allow("docker", "exec w1 nginx -t -q")          # the blocks are valid
    lab.allow("docker", "exec w1 nginx -s reload")
    lab.answer("docker", "inspect --format {{.Id}}* o1", "o1full /ems-1 healthy\n")
    lab.answer("docker", "inspect --format {{.Id}}* n1", f"n1full /ems-2 {new_health}\n")
    lab.answer("docker", "inspect --format {{.Id}}* o1 n1", f"o1full /ems-1 healthy\nn1full /ems-2 {new_health}\n")
    lab.answer("docker", "inspect --format {{.Name}}* n1", f"/ems-2 running {new_health} 0 unless-stopped\n")
    return t, stacks, Path(folder)


def pool(text: str) -> list[str]:
    return [line.split()[1] for line in text.splitlines() if line.strip().startswith("server ")]


def test_behind_nginx_the_new_container_joins_the_upstream_once_healthy_and_the_old_leaves_before_it_stops(lab):
    t, stacks, folder = behind_nginx(lab)
    run = lab.run(deploy_program(t, stacks, intent()))
    assert run.code == 0, run.stdout + run.stderr
    docker = [c for c in lab.commands("docker") if c.startswith(("exec", "stop", "rm", "cp", "compose -p ems_system-ems -f"))]
    assert [c for c in docker if not c.startswith("compose") or " up " in c] == [
        "exec w1 nginx -t -q", "exec w1 nginx -s reload",          # the block of o1 (none was written before)
        f"compose -p ems_system-ems -f {lab.root}/ems_system/repo/ems/docker-compose.yml up -d --no-deps "
        "--no-recreate --scale ems=2 ems",
        "exec w1 nginx -t -q", "exec w1 nginx -s reload",          # o1 and n1, once n1 is healthy
        "exec w1 nginx -t -q", "exec w1 nginx -s reload",          # n1 only: o1 out before it stops
        "stop o1", "rm -f o1",
        f"compose -p ems_system-ems -f {lab.root}/ems_system/repo/ems/docker-compose.yml up -d --remove-orphans"]
    assert pool((folder / "ems.conf").read_text()) == ["ems-2:8080;"]
    assert "upstream ems {" in (folder / "ems.conf").read_text()
    assert not [c for c in lab.commands("docker") if c.startswith("cp ")], "no drain file: nginx is told instead"


def test_behind_nginx_a_new_release_that_never_becomes_healthy_never_enters_the_upstream(lab):
    t, stacks, folder = behind_nginx(lab, new_health="unhealthy")
    lab.allow("docker", "logs --tail 30 *")
    run = lab.run(deploy_program(t, stacks, intent()))
    assert run.code == Code.BROKEN, run.stdout + run.stderr
    docker = lab.commands("docker")
    assert "rm -f n1" in docker and not [c for c in docker if c.startswith(("stop o1", "rm -f o1"))]
    assert docker.count("exec w1 nginx -s reload") == 1, "only the first block, of o1"
    assert pool((folder / "ems.conf").read_text()) == ["ems-1:8080;"]


def test_an_upstream_block_nginx_refuses_stops_the_rollout_before_any_old_container_stops(lab):
    t, stacks, folder = behind_nginx(lab)
    lab.answer("docker", "exec w1 nginx -t -q", "nginx: [emerg] host not found in upstream \"ems-2:8080\"\n",
               code=1, stderr=True)
    run = lab.run(deploy_program(t, stacks, intent()))
    assert run.code != 0
    assert "nginx (web) did not take the new upstreams: nginx: [emerg] host not found" in run.stdout
    assert not [c for c in lab.commands("docker") if c.startswith(("stop o1", "rm -f o1", "exec w1 nginx -s"))]


def test_a_pool_docker_cannot_describe_is_not_written_and_no_old_container_stops(lab):
    """A block built from a failed `docker inspect` could leave healthy containers out (or nginx with none)."""
    t, stacks, folder = behind_nginx(lab)
    lab.answer("docker", "inspect --format {{.Id}}* o1 n1", "o1full /ems-1 healthy\n", code=1)
    run = lab.run(deploy_program(t, stacks, intent()))
    assert run.code != 0 and "docker inspect of the ems containers failed" in run.stdout, run.stdout
    assert pool((folder / "ems.conf").read_text()) == ["ems-1:8080;"], "the block of o1, as before"
    assert not [c for c in lab.commands("docker") if c.startswith(("stop o1", "rm -f o1"))]


def test_a_container_name_nginx_cannot_be_given_is_never_written_into_its_config(lab):
    """Issue 20 item 7: container names went verbatim into the upstream block (names from Docker are data)."""
    t, stacks, folder = behind_nginx(lab)
    lab.answer("docker", "inspect --format {{.Id}}* o1", "o1full /ems-1;}server evil:80;# healthy\n")
    run = lab.run(deploy_program(t, stacks, intent()))
    assert run.code != 0 and "docker named a ems container" in run.stdout and "not a name nginx can be given" in \
        run.stdout, run.stdout
    assert not (folder / "ems.conf").exists() or "evil" not in (folder / "ems.conf").read_text()


def test_behind_nginx_only_its_upstreams_roll_and_must_be_in_the_stack_with_the_folder_mounted(lab):
    """nginx itself publishes port 80 and is not rolled (compose leaves it as it runs); a pool naming a
    service the compose file lacks, or an nginx that does not mount the folder, is refused before anything."""
    t, stacks, folder = behind_nginx(lab)
    lab.answer("docker", "compose -p ems_system-ems * config",
               "name: ems_system-ems\nservices:\n  ems:\n    image: x\n    healthcheck:\n      test: [CMD, x]\n"
               "  web:\n    image: nginx\n    ports:\n      - mode: ingress\n        target: 80\n"
               "        published: \"80\"\n        protocol: tcp\n")
    stacks = [replace(s, start_first=replace(s.start_first, nginx=NginxPool("web", (("ems", 8080), ("api", 3001)), "upstreams")))
              if s.name == "ems" else s for s in stacks]
    run = lab.run(deploy_program(t, stacks, intent()))
    assert run.code == Code.REFUSED, run.stdout
    assert "stack ems: rollout.nginx names service api, which its compose file does not have" in run.error
    assert f"stack ems: service web (nginx) must mount {folder}" in run.error
    assert "publishes host port" not in run.error


def test_start_first_with_a_volume_allowed_to_be_shared(lab):
    t, stacks = rolling(lab, shared_volumes=("uploads",))
    config = START_FIRST_CONFIG.replace("    container_name: ems_server_app\n", "").replace(
        "    ports:\n      - mode: ingress\n        target: 8080\n        published: \"8080\"\n        protocol: tcp\n", "")
    lab.answer("docker", "compose -p ems_system-ems * config", config)
    lab.answer("docker", "image inspect --format * y", '["CMD-SHELL","test ! -f /tmp/drain"]\n')   # the image's own
    run = lab.run(deploy_program(t, stacks, intent()))
    assert run.code == 0, run.error
    assert "stack ems: service ems's healthcheck has no start_period: with rollout: start-first" in run.stdout
    assert "service sidecar's healthcheck" not in run.stdout, "its image's own healthcheck is the image's business"
    t, stacks = start_first(lab)
    run = lab.run(deploy_program(t, stacks, intent(release="r2")))
    assert run.code == Code.REFUSED and "writes volume uploads" in run.error and "sidecar" not in run.error


def test_a_service_with_no_container_yet_gets_a_block_that_sends_nobody_anywhere(lab):
    """The first deploy behind nginx: no container of the service runs yet, so docker answers nothing (the name
    check once read that empty answer as a container named '')."""
    lab.allow("docker", "ps -q --filter label=com.docker.compose.project=p --filter label=com.docker.compose.service=ems *")
    run = lab.snippet("declare -A SPEC_PROJECT=([ems]=p); upstream_block ems ems 8080", {"upstream_block"})
    assert run.code == 0 and "upstream ems {" in run.stdout and "server 127.0.0.1:9 down;" in run.stdout, run.stdout
