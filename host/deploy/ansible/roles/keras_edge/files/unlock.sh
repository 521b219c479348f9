# unlock NAME OWNER: release the lock a failed deploy took (only if it is still that deploy's)
main() {
  cd "$HOME/keras-edge/bundles/$1" 2>/dev/null || exit 0
  drop_lock "$2"
  for d in .*.partial-* .*.tar-*; do if [ -e "$d" ]; then rm -rf -- "$d"; fi; done
}
main "$@" </dev/null
