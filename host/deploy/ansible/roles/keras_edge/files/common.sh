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
  for d in .*.partial-* .*.old-* .*.repair-* .*.tar-* .sums.*; do
    if [ -e "$d" ] && [ "$d" != "$cur" ]; then rm -rf -- "$d"; fi
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

# take_lock OWNER WAIT STALE BREAK: one deploy (or rollback) at a time per bundle on this board.
# The lock is the directory .lock (mkdir is atomic everywhere) holding who took it and when; it
# outlives a single ssh session because a deploy is several. Waits up to WAIT s for the holder;
# takes over a lock older than STALE s, or one whose owner is exactly BREAK (the workstation found
# that deploy dead). With flock(1) the check-and-take-over is serialized; without it, mkdir alone.
take_lock() {
  l_owner=$1; l_wait=$2; l_stale=$3; l_break=$4; l_waited=0
  while ! mkdir .lock 2>/dev/null; do
    if [ -L .lock ] || [ ! -d .lock ]; then   # not a lock keras-edge took: say so, never wait on it
      fail "$PWD/.lock is a $( [ -L .lock ] && echo symlink || echo plain file ), not the lock directory keras-edge makes; remove it if no deploy is running: rm $PWD/.lock"
    fi
    l_held=$(cat .lock/owner 2>/dev/null); l_since=$(cat .lock/since 2>/dev/null || date -r .lock +%s 2>/dev/null)
    l_now=$(date +%s); l_age=$(( l_now - ${l_since:-$l_now} ))
    if [ -n "$l_since" ] && { [ "$l_age" -ge "$l_stale" ] || { [ -n "$l_break" ] && [ "$l_held" = "$l_break" ]; }; }; then
      if command -v flock >/dev/null 2>&1; then
        flock .lockguard sh -c 'o=$(cat .lock/owner 2>/dev/null); [ "$o" = "$1" ] && mv .lock ".lock.stale-$$" && rm -rf ".lock.stale-$$"' \
          sh "$l_held" 2>/dev/null
      else
        mv .lock ".lock.stale-$$" 2>/dev/null && rm -rf ".lock.stale-$$"
      fi
      echo "lock_taken_over=$l_held (${l_age}s old)"
      continue
    fi
    if [ "$l_waited" -ge "$l_wait" ]; then
      echo "locked_by=$l_held"; echo "locked_since=${l_since:-0}"; echo "locked_age=$l_age"
      echo "error=another deploy holds the lock on $name here: $l_held, for ${l_age}s (waited ${l_waited}s)"
      exit 4
    fi
    [ "$l_waited" = 0 ] && echo "lock_waiting_for=$l_held"
    sleep 1; l_waited=$((l_waited + 1))
  done
  printf '%s\n' "$1" > .lock/owner && date +%s > .lock/since || { rm -rf .lock; fail "cannot write the lock in $PWD"; }
  [ "$l_waited" -gt 0 ] && echo "lock_waited=$l_waited"
  return 0
}

# own_lock OWNER: fail unless this deploy still holds the lock (a stale lock may have been taken over)
own_lock() {
  [ "$(cat .lock/owner 2>/dev/null)" = "$1" ] || fail "this deploy no longer holds the lock on $PWD (it was taken over as stale); nothing was switched"
}

# drop_lock OWNER: release the lock if it is ours
drop_lock() {
  if [ "$(cat .lock/owner 2>/dev/null)" = "$1" ]; then rm -rf .lock; fi
  rm -f .lockguard
}

# check_space NEED_KIB: fail, before anything is copied, when the file system has less free
check_space() {
  need=$1
  [ -n "$need" ] && [ "$need" -gt 0 ] 2>/dev/null || return 0
  free=$(df -Pk . 2>/dev/null | awk 'NR==2 {print $4}')
  [ -n "$free" ] || return 0
  echo "free_kib=$free"
  if [ "$free" -lt "$need" ]; then
    echo "error=not enough disk space on the board: this bundle needs ${need} KiB in $PWD, only ${free} KiB are free"
    return 5
  fi
}
