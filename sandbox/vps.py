"""One sandbox VPS: a separate host on this machine, reached over SSH like a real one.

It has its own network namespace (a veth pair to this machine), its own hostname (a UTS namespace: a Swarm
names its nodes after it), a private mount namespace in which a folder of its own is bind-mounted on ``/root`` (so ``/root/<system>/...`` is the real path on both sides), its own dockerd
and its own sshd. A long-lived "holder" process owns the mount namespace; dockerd and sshd join it with nsenter
(``ip netns exec`` would remount /sys and dockerd dies without its devices cgroup).
"""
from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path
from urllib.parse import urlsplit

from . import proc, registry

FILES = Path(__file__).parent / "files"


class SandboxHost:
    """A sandbox VPS named ``name``; ``index`` picks its addresses (10.200.<index>.2, gateway .1)."""

    def __init__(self, state: Path, name: str, index: int, client_key: Path):
        self.name, self.index = name, index
        self.dir = state / "hosts" / name
        self.root = self.dir / "root"
        self.netns = f"fsb-{name}"
        self.veth = f"fsbh{index}"
        self.address = f"10.200.{index}.2"
        self.gateway = f"10.200.{index}.1"
        self.sock = self.dir / "docker.sock"
        self.client_key = client_key
        self.known_hosts = self.dir / "known_hosts"
        self.commands_log = self.dir / "commands.log"
        self.stdin_log = self.dir / "stdin.log"

    # -- lifecycle -------------------------------------------------------------------------------------------
    def start(self) -> None:
        """Bring the host up, reusing whatever part of it already runs."""
        enter = self._base()
        self._sshd_config()
        os.makedirs("/run/sshd", exist_ok=True)
        proc.start(enter + ["/usr/sbin/sshd", "-D", "-e", "-f", str(self.dir / "sshd_config")],
                   self.dir / "sshd.pid", self.dir / "sshd.log")
        self._wait_dockerd()
        self._wait_sshd(self.dir / "sshd.log")

    def _base(self) -> list[str]:
        """The network, the mount namespace (its own folder on /root) and dockerd; the nsenter prefix that
        enters them."""
        self.dir.mkdir(parents=True, exist_ok=True)
        self.root.mkdir(mode=0o700, exist_ok=True)
        self._network()
        holder = proc.start(["nsenter", f"--net=/run/netns/{self.netns}", "unshare", "--mount", "--uts",
                             "--propagation", "private", "sh", "-c",
                             f"hostname '{self.name}' && mount --bind '{self.root}' /root && {self.mounts()}"
                             "exec sleep infinity"],
                            self.dir / "holder.pid", self.dir / "holder.log")
        proc.wait_for(f"{self.name} mount namespace", lambda: self._root_mounted(holder), 10, self.dir / "holder.log")
        enter = ["nsenter", f"--target={holder}", "--mount", "--uts", "--net"]
        proc.start(enter + ["dockerd", "--host", f"unix://{self.sock}", "--data-root", str(self.dir / "docker"),
                            "--exec-root", str(self.dir / "run"), "--pidfile", str(self.dir / "dockerd.pidfile"),
                            "--registry-mirror", f"https://{registry.HUB}"],  # Docker Hub's images come from here
                   self.dir / "dockerd.pid", self.dir / "dockerd.log")
        return enter

    def mounts(self) -> str:
        """More of the host's mount namespace, as shell commands each followed by ``&&`` (none here)."""
        return ""

    def _wait_dockerd(self) -> None:
        proc.wait_for(f"{self.name} dockerd", lambda: self.docker("version", check=False).returncode == 0,
                      60, self.dir / "dockerd.log")

    def _wait_sshd(self, log: Path) -> None:
        proc.wait_for(f"{self.name} sshd", lambda: proc.port_open(self.address, 22), 30, log)

    def stop(self) -> None:
        """Stop what this host runs (containers go with their dockerd) and remove its network."""
        for daemon in ("sshd", "dockerd", "holder"):
            proc.stop(self.dir / f"{daemon}.pid", timeout=30)
        proc.sh("ip", "netns", "del", self.netns, check=False)
        proc.sh("ip", "link", "del", self.veth, check=False)

    def reboot(self) -> None:
        """What a reboot does to a deploy: every program on the host dies at once, without a trap or an exit
        (stop() alone leaves an SSH session's programs running); then the daemons stop, the containers with
        them, and the host starts again (their restart policies bring them back)."""
        daemons = ("dockerd", "sleep", "docker-proxy")   # (stopped in order by stop(): the containers with them)
        for pid in proc.sh("ip", "netns", "pids", self.netns, check=False).stdout.split():
            try:
                comm = Path(f"/proc/{pid}/comm").read_text().strip()
                if comm not in daemons and not comm.startswith("containerd"):
                    os.kill(int(pid), signal.SIGKILL)
            except (OSError, ValueError):
                continue   # (gone meanwhile)
        self.stop()
        self.start()

    def _root_mounted(self, holder: int) -> bool:
        try:
            return os.path.samefile(f"/proc/{holder}/root/root", self.root)
        except OSError:
            return False

    def _network(self) -> None:
        if self.netns in proc.sh("ip", "netns", "list").stdout.split():
            return
        proc.sh("ip", "netns", "add", self.netns)
        proc.sh("ip", "link", "add", self.veth, "type", "veth", "peer", "name", "eth0", "netns", self.netns)
        proc.sh("ip", "addr", "add", f"{self.gateway}/24", "dev", self.veth)
        proc.sh("ip", "link", "set", self.veth, "up")
        inside = ["ip", "-n", self.netns]
        proc.sh(*inside, "addr", "add", f"{self.address}/24", "dev", "eth0")
        proc.sh(*inside, "link", "set", "eth0", "up")
        proc.sh(*inside, "link", "set", "lo", "up")
        proc.sh(*inside, "route", "add", f"{registry.ADDRESS}/32", "via", self.gateway)

    def _ssh_keys(self) -> Path:
        """The host's own key (made once), the known_hosts line the tests' inventory trusts, and the client key
        authorised to log in as root; the host key's path."""
        key = self.dir / "ssh_host_ed25519_key"
        if not key.exists():
            proc.sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", self.name, "-f", str(key))
        pub = (self.dir / "ssh_host_ed25519_key.pub").read_text().split()
        self.known_hosts.write_text(f"{self.address} {pub[0]} {pub[1]}\n")
        (self.dir / "authorized_keys").write_text(Path(f"{self.client_key}.pub").read_text())
        return key

    def _sshd_config(self) -> None:
        key = self._ssh_keys()
        shutil.copy(FILES / "record-command", self.dir / "record-command")
        (self.dir / "sshd_config").write_text(f"""\
ListenAddress {self.address}:22
HostKey {key}
PidFile none
AuthorizedKeysFile {self.dir / 'authorized_keys'}
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
StrictModes no
UsePAM no
MaxStartups 50
SetEnv DOCKER_HOST=unix://{self.sock} CURL_CA_BUNDLE={self.dir.parent.parent / registry.TRUST}
ForceCommand {self.dir / 'record-command'}
Subsystem sftp /usr/lib/openssh/sftp-server
""")

    # -- helpers for the harness and tests -----------------------------------------------------------------
    def docker(self, *args: str, check: bool = True, **kw):
        """Run the docker CLI against this host's dockerd (from this machine, as an observer)."""
        env = dict(os.environ, DOCKER_HOST=f"unix://{self.sock}", DOCKER_CONFIG=str(self.dir / "observer"))
        return proc.sh("docker", *args, check=check, env=env, **kw)

    def inside(self, script: str, check: bool = True):
        """Run a bash script inside the host's namespaces, as its own root would (no SSH, nothing recorded)."""
        holder = proc.read_pid(self.dir / "holder.pid")
        if not holder:
            raise proc.SandboxError(f"sandbox host {self.name} is not running")
        return proc.sh("nsenter", f"--target={holder}", "--mount", "--uts", "--net", "env",
                       f"DOCKER_HOST=unix://{self.sock}", "bash", "-c", script, check=check)

    def route_to_others(self) -> None:
        """Let this host reach the other sandbox hosts (10.200.0.0/16 through its gateway, this machine
        forwarding between the veth pairs), for tests whose hosts talk to each other (seed 002's servers)."""
        proc.sh("sysctl", "-qw", "net.ipv4.ip_forward=1")
        proc.sh("ip", "-n", self.netns, "route", "replace", "10.200.0.0/16", "via", self.gateway)

    def http(self, port: int, path: str) -> str | None:
        """GET http://127.0.0.1:port/path as seen from the host itself (its own loopback); None when it fails."""
        return self.get(f"http://127.0.0.1:{port}{path}")

    def get(self, url: str) -> str | None:
        """GET ``url`` from the host itself: a name in it is asked of the host's own port (Host and SNI kept, as
        a browser sent there by DNS would), its certificate not checked; None when it fails."""
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        r = proc.sh("nsenter", f"--net=/run/netns/{self.netns}", "curl", "-fsSk", "--max-time", "3", "--connect-to",
                    f"{parts.hostname}:{port}:127.0.0.1:{port}", url, check=False)
        return r.stdout.strip() if r.returncode == 0 else None

    def reset(self) -> None:
        """Forget everything deployed: containers, volumes, release images, logins, networks and the /root tree
        (Docker Hub's images stay, as a VPS keeps what it pulled once: they are large)."""
        self.inside("ids=$(docker ps -aq); [ -z \"$ids\" ] || docker rm -f $ids >/dev/null;"
                    "docker volume prune -af >/dev/null 2>&1 || docker volume prune -f >/dev/null;"
                    "docker network prune -f >/dev/null;"
                    # release images go; Docker Hub's (postgres, nginx, traefik: no registry in their name) stay
                    "ids=$(docker image ls -a --format '{{.Repository}} {{.ID}}' | awk '$1 ~ /[.:]/ || $1 == \"<none>\""
                    " {print $2}' | sort -u); [ -z \"$ids\" ] || docker rmi -f $ids >/dev/null 2>&1; true")
        for child in self.root.iterdir():
            shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
        self.forget_logs()

    def forget_logs(self) -> None:
        """Empty the logs of what the host received (commands and stdin): a reset host starts with none."""
        for log in (self.commands_log, self.stdin_log):
            log.write_text("")


class SmallDiskHost(SandboxHost):
    """A sandbox VPS whose Docker disk is small: its data root a 96 MiB tmpfs (in its own mount namespace), so
    a deploy meets a full disk, as seed 004's VPS did."""
    DISK = "96m"

    def mounts(self) -> str:
        docker = self.dir / "docker"
        docker.mkdir(parents=True, exist_ok=True)
        return f"mount -t tmpfs -o size={self.DISK},mode=0711 tmpfs '{docker}' && "
