#!/usr/bin/env bash
# Seeds fuzz/corpus/<target> from examples/ (the corpus is not committed,
# see .gitignore): the catalog's definitions, the compositions, the source
# files that carry `nestor:` annotations, and every template string of the
# example compositions, one file each.
#
#   fuzz/seed.sh [definition|composition|annotations|templates ...]   # default: all four
set -euo pipefail
fuzz="$(cd "$(dirname "$0")" && pwd)"
examples="$fuzz/../examples"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(definition composition annotations templates)
for target in "${targets[@]}"; do
  dir="$fuzz/corpus/$target"
  mkdir -p "$dir"
  case "$target" in
    definition) cp "$examples"/catalog/resources/*/*/*.yaml "$dir/" ;;
    composition) cp "$examples"/compositions/*/*.yaml "$dir/" ;;
    annotations)
      grep -rlE '(//|#|--|/\*) ?nestor:' "$examples" --exclude='*.yaml' --exclude='*.md' |
        while read -r f; do cp "$f" "$dir/"; done ;;
    templates)
      python3 - "$dir" "$examples"/compositions/*/*.yaml <<'PY'
import hashlib, re, sys
out, files = sys.argv[1], sys.argv[2:]
seen = set()
for path in files:
    for line in open(path, encoding="utf-8"):
        for quoted in re.findall(r'"((?:[^"\\]|\\.)*\{\{(?:[^"\\]|\\.)*)"', line):
            if quoted not in seen:
                seen.add(quoted)
                name = hashlib.sha1(quoted.encode()).hexdigest()[:16]
                open(f"{out}/{name}", "w", encoding="utf-8").write(quoted)
PY
      ;;
    *) echo "unknown target $target" >&2; exit 2 ;;
  esac
  echo "$target: $(ls "$dir" | wc -l) seeds in corpus/$target"
done
