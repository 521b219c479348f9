"""The fixed shell scripts that deploy runs on a board (POSIX sh, GNU or BusyBox userland).

They are constants: values arrive only as positional arguments (quoted on the workstation) and
the scripts answer with `key=value` lines. The whole script is one function called on the last
line with stdin from /dev/null, so nothing it runs can read the rest of the script.

Board layout, all under ``$HOME/keras-edge``:

    bundles/<name>/<version>/          one verified copy per version (version = manifest hash)
    bundles/<name>/current -> <version> switched with rename(2) only after verification
    bundles/<name>/previous -> <version> what `rollback` switches back to
    bundles/<name>/history             versions in the order they were made current (for --keep)
    bundles/<name>/.<version>.partial-XXXXXX   a copy in progress; never a link target
    venv/bin/keras-edge                the runner, when installed with --install-runner
"""

_COMMON = r'''
LC_ALL=C; export LC_ALL  # tool messages in one language, whatever the board's locale
fail() { echo "error=$*"; exit 3; }

# write_sums HASH FILE [HASH FILE]...: the sha256sum list the workstation computed
write_sums() {
  while [ $# -gt 1 ]; do printf '%s  %s\n' "$1" "$2"; shift 2; done
}

# verify DIR SUMS VERSION: the copy matches its checksums (and the manifest is that version's),
# then the runner's own `verify` when the runner is installed
verify() {
  vdir=$1; sums=$2; ver=$3; by=""
  [ -f "$vdir/manifest.json" ] || { echo "verify_error=$vdir has no manifest.json"; return 1; }
  grep -q "^$ver[0-9a-f]*  manifest.json\$" "$sums" 2>/dev/null \
    || { echo "verify_error=the checksum list in $vdir does not belong to version $ver"; return 1; }
  if command -v sha256sum >/dev/null 2>&1; then
    out=$(cd "$vdir" && sha256sum -c "$sums" 2>&1) || {
      echo "verify_error=checksum mismatch on the board: $(printf '%s\n' "$out" | grep -v ': OK$' | head -n 3 | tr '\n' ' ')"
      return 1; }
    by=sha256
  fi
  runner="$HOME/keras-edge/venv/bin/keras-edge"
  if [ -x "$runner" ]; then
    out=$("$runner" verify "$vdir" 2>&1) || {
      echo "verify_error=keras-edge verify failed on the board: $(printf '%s\n' "$out" | grep -v '^[[:space:]]*$' | tail -n 1 | sed 's/^error: //')"
      return 1; }
    by="${by:+$by + }keras-edge verify"
  fi
  [ -n "$by" ] || { echo "verify_error=the board has neither sha256sum nor the keras-edge runner to check the copy"; return 1; }
  echo "verified_by=$by"
}

facts() {
  model=""
  [ -r /proc/device-tree/model ] && model=$(tr -d '\000' < /proc/device-tree/model)
  cpu=$(lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -n 1)
  [ -n "$cpu" ] || cpu=$(sed -n 's/^\(model name\|Hardware\|cpu model\)[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo 2>/dev/null | head -n 1)
  os=""; os_id=""
  if [ -r /etc/os-release ]; then
    os=$(. /etc/os-release && echo "${PRETTY_NAME:-$NAME}")
    os_id=$(. /etc/os-release && echo "${ID:-}${VERSION_ID:+-$VERSION_ID}")
  fi
  echo "model=$model"
  echo "cpu=$cpu"
  echo "arch=$(uname -m)"
  echo "os=$os"
  echo "os_id=$os_id"
  echo "kernel=$(uname -r)"
  echo "hostname=$(uname -n)"
  echo "cores=$(getconf _NPROCESSORS_ONLN 2>/dev/null)"
}

# prune KEEP: remove versions beyond the KEEP most recent (never current or previous) and
# anything a killed transfer left behind
prune() {
  keep=$1
  cur=$(readlink current 2>/dev/null); prev=$(readlink previous 2>/dev/null)
  recent=$(tail -n "$keep" history 2>/dev/null)
  for d in *; do
    [ -d "$d" ] && [ ! -L "$d" ] || continue
    case "$d" in *[!0-9a-f]*) continue ;; esac
    if [ "$d" = "$cur" ] || [ "$d" = "$prev" ]; then continue; fi
    if printf '%s\n' "$recent" | grep -qxF -- "$d"; then continue; fi
    rm -rf -- "$d" && echo "pruned=$d"
  done
  for d in .*.partial-* .*.old-* .sums.*; do
    [ -e "$d" ] && rm -rf -- "$d"
  done
  if [ -f history ]; then
    while read -r v; do [ -d "$v" ] && echo "$v"; done < history > ".history.$$" && mv -f ".history.$$" history
  fi
}

# switch NAME VERSION: point the NAME link at VERSION with one rename(2)
switch() {
  ln -sfn "$2" ".$1.$$" && mv -T -f ".$1.$$" "$1"
}

remember() {
  { [ -f history ] && grep -vxF -- "$1" history; echo "$1"; } > ".history.$$" && mv -f ".history.$$" history
}
'''

# prepare NAME VERSION HASH FILE...: facts, tools, links; checks an existing copy of VERSION and
# makes a fresh partial directory when a copy is needed
PREPARE = _COMMON + r'''
main() {
  name=$1; version=$2; shift 2
  dir="$HOME/keras-edge/bundles/$name"
  mkdir -p "$dir" || fail "cannot create $dir on the board"
  cd "$dir" || fail "cannot enter $dir on the board"
  echo "dir=$dir"
  for tool in rsync sha256sum tar python3; do
    if command -v "$tool" >/dev/null 2>&1; then echo "has_$tool=yes"; else echo "has_$tool=no"; fi
  done
  if [ -x "$HOME/keras-edge/venv/bin/keras-edge" ]; then echo runner=yes; else echo runner=no; fi
  facts
  echo "current=$(readlink current 2>/dev/null)"
  echo "previous=$(readlink previous 2>/dev/null)"
  state=absent
  if [ -d "$version" ] && [ ! -L "$version" ]; then
    sums=$(mktemp "$dir/.sums.XXXXXX") || fail "cannot write in $dir"
    write_sums "$@" > "$sums"
    if verify "$dir/$version" "$sums" "$version"; then state=valid; else state=damaged; fi
    rm -f "$sums"
  fi
  echo "have=$state"
  if [ "$state" != valid ]; then
    partial=$(mktemp -d "$dir/.$version.partial-XXXXXX") || fail "cannot create a directory in $dir"
    chmod "$(umask -S)" "$partial" 2>/dev/null  # mktemp makes it private; a version dir follows the umask
    echo "partial=$partial"
  fi
}
main "$@" </dev/null
'''

# activate NAME VERSION PARTIAL KEEP HASH FILE...: verify the copy in PARTIAL (if any), move it to
# VERSION, switch `current` (and `previous`), record history, prune
ACTIVATE = _COMMON + r'''
main() {
  name=$1; version=$2; partial=$3; keep=$4; shift 4
  dir="$HOME/keras-edge/bundles/$name"
  cd "$dir" || fail "$dir is missing on the board"
  if [ -n "$partial" ]; then
    case "$partial" in "$dir/.$version.partial-"*) ;; *) fail "refusing to use $partial as a copy of $version" ;; esac
    [ -d "$partial" ] || fail "the copy $partial vanished (was another deploy to this board running at the same time?)"
    sums=$(mktemp "$dir/.sums.XXXXXX") || fail "cannot write in $dir"
    write_sums "$@" > "$sums"
    if ! cmp -s "$sums" "$partial/SHA256SUMS"; then
      rm -rf -- "$partial" "$sums"; fail "the copied SHA256SUMS differs from the one sent"
    fi
    if ! verify "$partial" "$sums" "$version"; then rm -rf -- "$partial" "$sums"; exit 3; fi
    rm -f "$sums"
    if [ -e "$version" ]; then mv -f "$version" ".$version.old-$$" || fail "cannot replace the damaged copy of $version"; fi
    mv "$partial" "$version" || fail "cannot rename the copy to $version"
    rm -rf -- ".$version.old-$$"
  fi
  [ -d "$version" ] || fail "version $version is not on the board"
  cur=$(readlink current 2>/dev/null)
  if [ "$cur" != "$version" ]; then
    if [ -n "$cur" ]; then switch previous "$cur" || fail "cannot update the previous link"; fi
    switch current "$version" || fail "cannot switch the current link"
    echo "switched=yes"
  fi
  remember "$version" || fail "cannot write $dir/history"
  prune "$keep"
  echo "current=$(readlink current)"
  echo "previous=$(readlink previous 2>/dev/null)"
}
main "$@" </dev/null
'''

# rollback NAME: verify the previous version, then swap the current and previous links
ROLLBACK = _COMMON + r'''
main() {
  name=$1
  dir="$HOME/keras-edge/bundles/$name"
  cd "$dir" 2>/dev/null || fail "no bundle named $name is deployed on this board"
  cur=$(readlink current 2>/dev/null) || fail "$name has no current version on this board"
  prev=$(readlink previous 2>/dev/null)
  if [ -z "$prev" ] || [ "$prev" = "$cur" ]; then fail "$name has no previous version on this board"; fi
  [ -d "$prev" ] || fail "the previous version $prev of $name is gone from the board"
  verify "$dir/$prev" "$dir/$prev/SHA256SUMS" "$prev" || exit 3
  switch previous "$cur" || fail "cannot update the previous link"
  switch current "$prev" || fail "cannot switch the current link"
  remember "$prev"
  echo "current=$prev"
  echo "previous=$cur"
}
main "$@" </dev/null
'''

# runner_dir: make ~/keras-edge/wheels for the wheel and report the board
RUNNER_DIR = _COMMON + r'''
main() {
  mkdir -p "$HOME/keras-edge/wheels" || fail "cannot create $HOME/keras-edge/wheels on the board"
  echo "wheels=$HOME/keras-edge/wheels"
  for tool in rsync tar; do
    if command -v "$tool" >/dev/null 2>&1; then echo "has_$tool=yes"; else echo "has_$tool=no"; fi
  done
  if command -v python3 >/dev/null 2>&1; then echo "python=$(python3 -c 'import sys; print(sys.version.split()[0])')"; fi
  facts
}
main "$@" </dev/null
'''

# install_runner WHEEL: venv in ~/keras-edge/venv, the wheel with its device extra, then doctor
INSTALL_RUNNER = _COMMON + r'''
main() {
  wheel=$1
  root="$HOME/keras-edge"; venv="$root/venv"; log="$root/install.log"
  command -v python3 >/dev/null 2>&1 || fail "python3 is not installed on the board (apt-get install python3 python3-venv)"
  : > "$log"
  if [ ! -x "$venv/bin/pip" ]; then
    rm -rf -- "$venv"
    python3 -m venv "$venv" >> "$log" 2>&1 \
      || fail "cannot create $venv: $(tail -n 1 "$log") (on Debian or Raspberry Pi OS: sudo apt-get install python3-venv)"
  fi
  # the extra's dependencies, then this very wheel even when its version number did not change
  { "$venv/bin/python" -m pip install --disable-pip-version-check --upgrade "$wheel[device]" \
    && "$venv/bin/python" -m pip install --disable-pip-version-check --force-reinstall --no-deps "$wheel"; } >> "$log" 2>&1 \
    || fail "pip install on the board failed: $(grep -v '^[[:space:]]*$' "$log" | tail -n 1) (full log: $log)"
  echo "version=$("$venv/bin/keras-edge" --version 2>&1 | tail -n 1)"
  "$venv/bin/keras-edge" doctor --json > "$root/doctor.json" 2>> "$log"
  echo "doctor_status=$?"
  case "$(head -c 1 "$root/doctor.json")" in
    "{") echo "doctor_json=$(tr -d '\n' < "$root/doctor.json")" ;;
    *) fail "keras-edge doctor failed on the board: $(grep -v '^[[:space:]]*$' "$log" | tail -n 1) (full log: $log)" ;;
  esac
}
main "$@" </dev/null
'''

# bench NAME VERSION ARG...: facts, then the board's `bench --json` on the current version
BENCH = _COMMON + r'''
main() {
  name=$1; version=$2; shift 2
  runner="$HOME/keras-edge/venv/bin/keras-edge"
  dir="$HOME/keras-edge/bundles/$name"
  [ -x "$runner" ] || fail "the keras-edge runner is not installed on the board; deploy with --install-runner first"
  cur=$(readlink "$dir/current" 2>/dev/null) || fail "bundle $name is not deployed on the board; run keras-edge deploy first"
  [ "$cur" = "$version" ] || fail "the board runs version $cur of $name, not this bundle's $version; deploy this bundle first"
  facts
  echo "json-follows"
  exec "$runner" bench "$dir/current" --json "$@"
}
main "$@" </dev/null
'''
