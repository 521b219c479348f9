# profile NAME VERSION ARG...: facts, then the board's `profile --json` on the current version
main() {
  name=$1; version=$2; shift 2
  runner="$HOME/keras-edge/venv/bin/keras-edge"
  dir="$HOME/keras-edge/bundles/$name"
  [ -x "$runner" ] || fail "the keras-edge runner is not installed on the board; deploy with --install-runner first"
  cur=$(readlink "$dir/current" 2>/dev/null) || fail "bundle $name is not deployed on the board; run keras-edge deploy first"
  [ "$cur" = "$version" ] || fail "the board runs version $cur of $name, not this bundle's $version; deploy this bundle first"
  facts
  echo "json-follows"
  exec "$runner" profile "$dir/current" --json "$@"
}
main "$@" </dev/null
