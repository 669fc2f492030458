# shellcheck shell=bash
# The deploy user `fab bootstrap --create-user` makes (a login with the operator's key, sudo without a password
# for the tool's programs, the docker group), the proof that it logs in, and root's SSH login closed only
# after that proof. sshd's settings are checked (sshd -t, then what sshd -T says it would do) before sshd
# reloads them: a check that fails takes the new file away again and changes nothing.
# shellcheck disable=SC2034,SC2154  # globals shared across files; R_* and SYSROOT come from the program's head

# create_user NAME KEYS:lines: NAME created where missing (bash, a home), each of KEYS (public keys, one per
# line) in its ~/.ssh/authorized_keys unless there already, a sudoers drop-in checked by visudo before it is
# moved into place, and the docker group where the host has one.
create_user() {
  local name=$1 keys=$2 home group file key added=0 created=no
  say "step user $name: its key, sudo without a password"
  command -v sudo >/dev/null 2>&1 || install_packages sudo
  if ! id -u "$name" >/dev/null 2>&1; then
    useradd --create-home --shell /bin/bash "$name" || die "$R_FAILED" "useradd $name failed"
    created=yes
  fi
  home=$(getent passwd "$name" | cut -d: -f6) group=$(id -gn "$name") || die "$R_FAILED" "cannot read $name's home"
  case $home in ""|/) die "$R_REFUSED" "$name has no home folder of its own ('$home')" ;; esac
  file=$SYSROOT$home/.ssh/authorized_keys
  { mkdir -p "$SYSROOT$home/.ssh" && chmod 700 "$SYSROOT$home/.ssh" && chown "$name:$group" "$SYSROOT$home/.ssh"; } \
    || die "$R_FAILED" "cannot make $home/.ssh"
  while IFS= read -r key; do
    [ -n "$key" ] || continue
    grep -qxF -- "$key" "$file" 2>/dev/null && continue
    append_line "$file" "$key" || die "$R_FAILED" "cannot write $home/.ssh/authorized_keys"
    added=$((added + 1))
  done <<< "$keys"
  { chmod 600 "$file" && chown "$name:$group" "$file"; } || die "$R_FAILED" "cannot give $home/.ssh/authorized_keys to $name"
  sudoers_drop_in "$name"
  if getent group docker >/dev/null 2>&1; then usermod -aG docker "$name" || die "$R_FAILED" "cannot add $name to the docker group"; fi
  data user name "$name" created "$created" keys "$added"
}

# sudoers_drop_in NAME: /etc/sudoers.d/fab-NAME lets NAME run the tool's programs as root without a password;
# written aside (sudo skips names with a dot), checked by visudo, then moved into place.
sudoers_drop_in() {
  local file=$SYSROOT/etc/sudoers.d/fab-$1 tmp out
  [ -d "$SYSROOT/etc/sudoers.d" ] || install -d -m 755 "$SYSROOT/etc/sudoers.d" || die "$R_FAILED" "cannot create /etc/sudoers.d"
  tmp=$(mktemp "$SYSROOT/etc/sudoers.d/.fab-$1.XXXXXX") || die "$R_FAILED" "cannot write in /etc/sudoers.d"
  if ! { printf '%s ALL=(root) NOPASSWD: ALL\n' "$1" > "$tmp" && chmod 440 "$tmp"; }; then
    rm -f "$tmp"
    die "$R_FAILED" "cannot write $tmp"
  fi
  if ! out=$(visudo -c -f "$tmp" 2>&1); then
    rm -f "$tmp"
    die "$R_FAILED" "visudo refused the sudoers line for $1, nothing changed: $(printf '%s' "$out" | tail -n 1)"
  fi
  mv -f "$tmp" "$file" || { rm -f "$tmp"; die "$R_FAILED" "cannot move the sudoers drop-in into place"; }
}

# login_check: who this program runs as (run through the new user's login and sudo: uid 0 proves both).
login_check() {
  data whoami uid "$(id -u)" user "${SUDO_USER:-$(id -un)}"
}

# lock_root: root's SSH login closed (PermitRootLogin no, in a drop-in read before any other), once sshd -t
# accepts it and sshd -T says it applies, by reloading sshd. Anything else takes the drop-in away again.
lock_root() {
  local file=$SYSROOT/etc/ssh/sshd_config.d/00-fab-root.conf out
  say "step root root's SSH login closed"
  [ -d "$SYSROOT/etc/ssh/sshd_config.d" ] || die "$R_REFUSED" "this sshd reads no /etc/ssh/sshd_config.d: root's login was left open"
  atomic_write "$file" printf 'PermitRootLogin no\n' || die "$R_FAILED" "cannot write $file"
  chmod 644 "$file"
  if ! out=$(sshd -t 2>&1); then
    rm -f "$file"
    die "$R_FAILED" "sshd -t refused the configuration, root's login left open: $(printf '%s' "$out" | tail -n 1)"
  fi
  out=$(sshd -T -C user=root,host=localhost,addr=127.0.0.1 2>/dev/null) || out=""
  if ! grep -qx 'permitrootlogin no' <<< "$out"; then
    rm -f "$file"
    die "$R_REFUSED" "sshd would still let root in (a setting read before $file wins): root's login left open"
  fi
  if ! systemctl reload ssh 2>/dev/null && ! systemctl reload sshd 2>/dev/null; then
    rm -f "$file"
    die "$R_FAILED" "cannot reload sshd: root's login left open"
  fi
  data root_login result closed
}
