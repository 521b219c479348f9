# prepare NAME VERSION NEED_KIB OWNER WAIT STALE BREAK HASH FILE...: lock, facts, tools, links; checks an
# existing copy of VERSION; when a copy is needed, checks the free space and makes a fresh partial
# directory. Exit 4: locked by another deploy; exit 5: not enough space (both before any copy).
main() {
  name=$1; version=$2; need=$3; owner=$4; wait_s=$5; stale_s=$6; break_owner=$7; shift 7
  dir="$HOME/keras-edge/bundles/$name"
  mkdir -p "$dir" || fail "cannot create $dir on the board"
  cd "$dir" || fail "cannot enter $dir on the board"
  take_lock "$owner" "$wait_s" "$stale_s" "$break_owner"
  for link in current previous; do   # a real folder there is not ours to replace: say so before copying
    if [ -e "$link" ] && [ ! -L "$link" ]; then
      drop_lock "$owner"
      fail "$dir/$link is a real $( [ -d "$link" ] && echo folder || echo file ), not the link keras-edge switches; move it out of $dir, then deploy again"
    fi
  done
  echo "dir=$dir"
  for tool in rsync sha256sum tar python3 flock; do
    if command -v "$tool" >/dev/null 2>&1; then echo "has_$tool=yes"; else echo "has_$tool=no"; fi
  done
  if [ -x "$HOME/keras-edge/venv/bin/keras-edge" ]; then echo runner=yes; else echo runner=no; fi
  facts
  echo "current=$(readlink current 2>/dev/null)"
  echo "previous=$(readlink previous 2>/dev/null)"
  for d in .*.partial-* .*.tar-* .sums.*; do  # left by a killed deploy: we hold the lock, so nobody uses them
    if [ -e "$d" ]; then rm -rf -- "$d"; fi
  done
  state=absent
  if [ -d "$version" ] && [ ! -L "$version" ]; then
    sums=$(mktemp "$dir/.sums.XXXXXX") || { drop_lock "$owner"; fail "cannot write in $dir"; }
    write_sums "$@" > "$sums"
    if verify "$dir/$version" "$sums" "$version"; then state=valid; else state=damaged; fi
    rm -f "$sums"
  fi
  echo "have=$state"
  if [ "$state" != valid ]; then
    check_space "$need" || { drop_lock "$owner"; exit 5; }
    partial=$(mktemp -d "$dir/.$version.partial-XXXXXX") || { drop_lock "$owner"; fail "cannot create a directory in $dir"; }
    chmod "$(umask -S)" "$partial" 2>/dev/null  # mktemp makes it private; a version dir follows the umask
    echo "partial=$partial"
  fi
}
main "$@" </dev/null
