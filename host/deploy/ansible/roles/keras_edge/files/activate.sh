# activate NAME VERSION PARTIAL KEEP OWNER HASH FILE...: verify the copy in PARTIAL (if any), move it to
# VERSION, switch `current` (and `previous`), record history, prune; the lock is released on exit.
# Replacing a damaged VERSION that `current` points at never leaves `current` dangling: it points at
# a verified hard-linked twin of the new copy while the directories are swapped.
main() {
  name=$1; version=$2; partial=$3; keep=$4; owner=$5; shift 5
  dir="$HOME/keras-edge/bundles/$name"
  cd "$dir" || fail "$dir is missing on the board"
  trap 'drop_lock "$owner"' EXIT
  own_lock "$owner"
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
    if [ -e "$version" ]; then
      twin=""
      if [ "$(readlink current 2>/dev/null)" = "$version" ]; then
        twin=".$version.repair-$$"
        cp -al "$partial" "$twin" 2>/dev/null || cp -a "$partial" "$twin" || fail "cannot stage the repaired copy of $version"
        switch current "$twin" || fail "cannot switch the current link"
      fi
      mv -f "$version" ".$version.old-$$" || fail "cannot replace the damaged copy of $version"
      mv "$partial" "$version" || { mv -f ".$version.old-$$" "$version"; fail "cannot rename the copy to $version"; }
      if [ -n "$twin" ]; then switch current "$version" || fail "cannot switch the current link"; rm -rf -- "$twin"; fi
      rm -rf -- ".$version.old-$$"
    else
      mv "$partial" "$version" || fail "cannot rename the copy to $version"
    fi
  fi
  [ -d "$version" ] || fail "version $version is not on the board"
  cur=$(readlink current 2>/dev/null)
  if [ "$cur" != "$version" ]; then
    if [ -n "$cur" ] && [ -d "$cur" ]; then switch previous "$cur" || fail "cannot update the previous link"; fi
    switch current "$version" || fail "cannot switch the current link"
    echo "switched=yes"
  fi
  remember "$version" || fail "cannot write $dir/history"
  prune "$keep"
  echo "current=$(readlink current)"
  echo "previous=$(readlink previous 2>/dev/null)"
}
main "$@" </dev/null
