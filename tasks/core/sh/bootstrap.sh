# shellcheck shell=bash
# Bootstrap: a bare host made ready for the tool. Its OS recognised from /etc/os-release (Debian 12/13 and
# Ubuntu 22.04/24.04 with apt, Oracle Linux, Rocky and Alma 8/9 with dnf; anything else refused), what the
# programs use (curl, git, ca-certificates, tar), Docker Engine and the Compose v2 plugin from the distribution's
# packages or Docker's repository (or a mirror of either), the daemon enabled and started, both versions checked.
# A host that already runs Docker with a recent enough Compose keeps them: a second run changes nothing.
# Globals: OS_ID, OS_VERSION, OS_CODENAME, OS_FAMILY (debian|rhel), APT_UPDATED; SYSROOT (the program's head:
# "" on a host, a scratch folder in the fast tier) before every path under /etc.
# shellcheck disable=SC2034,SC2154  # globals shared across files; R_* and SYSROOT come from the program's head

# os_detect: the host's OS as /etc/os-release says; an OS bootstrap does not know is refused.
os_detect() {
  local file=$SYSROOT/etc/os-release id version pretty
  [ -r "$file" ] || die "$R_REFUSED" "cannot read /etc/os-release: bootstrap knows Debian, Ubuntu and RHEL-family hosts only"
  id=$(env_value "$file" ID) version=$(env_value "$file" VERSION_ID) pretty=$(env_value "$file" PRETTY_NAME)
  OS_FAMILY=""
  case $id/$version in
    debian/12|debian/13|ubuntu/22.04|ubuntu/24.04) OS_FAMILY=debian ;;
    ol/8*|ol/9*|rocky/8*|rocky/9*|almalinux/8*|almalinux/9*) OS_FAMILY=rhel ;;
  esac
  [ -n "$OS_FAMILY" ] || die "$R_REFUSED" "unsupported OS: $(printf '%q' "${pretty:-$id $version}"); bootstrap knows Debian 12/13, Ubuntu 22.04/24.04, and Oracle Linux, Rocky and Alma 8/9"
  OS_ID=$id OS_VERSION=$version OS_CODENAME=$(env_value "$file" VERSION_CODENAME)
  data os id "$id" version "$version" family "$OS_FAMILY"
}

# install_packages PACKAGE...: the packages installed with the host's package manager (apt-get's lists
# refreshed once per run); its last line said when it fails.
install_packages() {
  local out unreached
  say "info installing $*"
  if [ "$OS_FAMILY" = debian ]; then
    if [ -z "${APT_UPDATED:-}" ]; then
      out=$(DEBIAN_FRONTEND=noninteractive apt-get update -q 2>&1) \
        || die "$R_FAILED" "apt-get update failed: $(printf '%s' "$out" | tail -n 1)"
      APT_UPDATED=1
      unreached=$(printf '%s\n' "$out" | grep -E '^(W|E|Err): .*(Failed to fetch|Could not|Unable to connect)' | head -n 3)
      [ -z "$unreached" ] || say "info apt-get update could not reach every source (a mirror-only host expects this): $(printf '%s' "$unreached" | tr '\n' ' ')"
    fi
    out=$(DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" 2>&1)
  else
    out=$(dnf install -y -q "$@" 2>&1)
  fi || die "$R_FAILED" "installing $* failed: $(printf '%s' "$out" | tail -n 1) (run bootstrap again once fixed: it finishes what is missing)"
}

# bootstrap_tools: what the tool's programs run besides docker, installed where missing (rsync: the files
# backups; restic: their copies off the VPS, a package of Debian and Ubuntu, of EPEL only on the RHEL family).
bootstrap_tools() {
  local tool missing=() tools=(curl git tar rsync restic)
  say "step tools curl, git, ca-certificates, tar, rsync and restic"
  if [ "$OS_FAMILY" = rhel ]; then
    tools=(curl git tar rsync)
    command -v restic >/dev/null 2>&1 || say "info restic is an EPEL package on $OS_ID: install it there for backup: offsite"
  fi
  for tool in "${tools[@]}"; do command -v "$tool" >/dev/null 2>&1 || missing+=("$tool"); done
  [ -e "$SYSROOT/etc/ssl/certs/ca-certificates.crt" ] || [ -e "$SYSROOT/etc/pki/tls/certs/ca-bundle.crt" ] \
    || missing+=(ca-certificates)
  if [ "${#missing[@]}" = 0 ]; then data tools result kept; return 0; fi
  install_packages "${missing[@]}"
  data tools result installed names "${missing[*]}"
}

# bootstrap_docker distro|docker-ce MIRROR: Docker Engine and the Compose plugin, from the distribution's
# packages (where it has them) or Docker's repository, MIRROR ("" or a URL standing in for the distribution's
# archive or Docker's repository); kept as they are when the host has both already.
bootstrap_docker() {
  say "step docker Docker Engine and the Compose v2 plugin"
  if command -v docker >/dev/null 2>&1 && docker compose version >/dev/null 2>&1; then
    data docker result kept
    return 0
  fi
  if [ "$1" = distro ] && [ "$OS_FAMILY" = rhel ]; then
    say "info $OS_ID ships Podman, not Docker: Docker's repository it is"
    set -- docker-ce "$2"
  fi
  docker_packages "$1"   # (refuses before anything is written)
  [ "$1" = docker-ce ] && docker_repo "$2"
  install_packages "${DOCKER_PACKAGES[@]}"
  data docker result installed source "$1"
}

# docker_packages SOURCE: DOCKER_PACKAGES, the package names of Docker Engine and the Compose v2 plugin.
docker_packages() {
  case $1/$OS_ID/$OS_VERSION in
    docker-ce/*) DOCKER_PACKAGES=(docker-ce docker-ce-cli containerd.io docker-compose-plugin) ;;
    distro/debian/13) DOCKER_PACKAGES=(docker.io docker-cli docker-compose) ;;   # (trixie's docker-compose is
      # Compose v2; its docker.io only recommends the CLI, which --no-install-recommends would leave out)
    distro/ubuntu/*) DOCKER_PACKAGES=(docker.io docker-compose-v2) ;;
    *) die "$R_REFUSED" "$OS_ID $OS_VERSION's own packages have no Compose v2 (its docker-compose is 1.x): set bootstrap: {docker: docker-ce} for this host" ;;
  esac
}

# docker_repo MIRROR: Docker's package repository (or MIRROR, a copy of https://download.docker.com/linux)
# added, its signing key fetched over https (or from the mirror).
docker_repo() {
  local base=${1:-https://download.docker.com/linux}
  if [ "$OS_FAMILY" = debian ]; then
    base+=/$OS_ID
    install -d -m 755 "$SYSROOT/etc/apt/keyrings" || die "$R_FAILED" "cannot create /etc/apt/keyrings"
    atomic_write "$SYSROOT/etc/apt/keyrings/docker.asc" curl -fsSL --max-time 60 "$base/gpg" \
      || die "$R_FAILED" "cannot fetch Docker's signing key from $base/gpg"
    chmod 644 "$SYSROOT/etc/apt/keyrings/docker.asc"
    atomic_write "$SYSROOT/etc/apt/sources.list.d/docker.list" \
      printf 'deb [signed-by=/etc/apt/keyrings/docker.asc] %s %s stable\n' "$base" "$OS_CODENAME" \
      || die "$R_FAILED" "cannot write /etc/apt/sources.list.d/docker.list"
  else
    base+=/centos
    # shellcheck disable=SC2016  # $releasever and $basearch are dnf's own variables, written as they are
    atomic_write "$SYSROOT/etc/yum.repos.d/docker-ce.repo" printf '[docker-ce-stable]\nname=Docker CE Stable\nbaseurl=%s/$releasever/$basearch/stable\nenabled=1\ngpgcheck=1\ngpgkey=%s/gpg\n' \
      "$base" "$base" || die "$R_FAILED" "cannot write /etc/yum.repos.d/docker-ce.repo"
  fi
  chmod 644 "$SYSROOT"/etc/apt/sources.list.d/docker.list "$SYSROOT"/etc/yum.repos.d/docker-ce.repo 2>/dev/null
  say "info Docker's repository: $base"
}

# distro_mirror distro|docker-ce MIRROR: the distribution's archive from MIRROR (a copy of it, signed by it)
# when Docker comes from the distribution's packages: written before anything is installed, the tools come
# from it too. Kept as it is when it already says so.
distro_mirror() {
  local list=$SYSROOT/etc/apt/sources.list.d/fab-mirror.list line
  [ "$1" = distro ] && [ -n "$2" ] && [ "$OS_FAMILY" = debian ] || return 0
  line="deb $2 $OS_CODENAME main"
  [ "$(cat "$list" 2>/dev/null)" = "$line" ] && return 0
  atomic_write "$list" printf '%s\n' "$line" || die "$R_FAILED" "cannot write /etc/apt/sources.list.d/fab-mirror.list"
  chmod 644 "$list"
  say "info the distribution's packages from $2"
}

# bootstrap_check: the daemon enabled and started (one that answers is left as it is run: a sandbox's, a
# snap's), both versions reported; a Compose older than 2.20 (the
# oldest the programs are tested with: Ubuntu 22.04's docker-compose-v2) is refused with the version found.
bootstrap_check() {
  local engine compose min=2.20
  say "step daemon docker enabled, started and answering"
  if ! docker version --format '{{.Server.Version}}' >/dev/null 2>&1 && command -v systemctl >/dev/null 2>&1; then   # (one that answers: left as run)
    systemctl enable --now docker >/dev/null 2>&1 || die "$R_FAILED" "systemctl enable --now docker failed: $(systemctl status docker 2>&1 | tail -n 1)"
  fi
  engine=$(docker version --format '{{.Server.Version}}' 2>&1) || die "$R_FAILED" "docker does not answer: $(printf '%s' "$engine" | tail -n 1)"
  compose=$(docker compose version --short 2>&1) || die "$R_REFUSED" "no Compose v2 plugin: docker compose says $(printf '%s' "$compose" | tail -n 1)"
  compose=${compose#v}
  if [ "$(printf '%s\n%s\n' "$min" "$compose" | sort -V | head -n 1)" != "$min" ]; then
    die "$R_REFUSED" "Compose $compose is too old: the tool needs $min or newer"
  fi
  data versions engine "$engine" compose "$compose"
}
