#!/usr/bin/env bash
# check_architecture.sh — fails when a source file of engine/, gst/, orc/ or tools/ is not
# named in docs/architecture.md (the map of the house must stay true as code moves), or
# when the map names a file that no longer exists. Not a style check: names only.
set -u
root=${FASTVLM_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$root" || exit 1
doc=docs/architecture.md
[ -f "$doc" ] || { echo "FAIL: $doc missing"; exit 1; }
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    files=$(git ls-files --cached --others --exclude-standard engine gst orc tools | grep -E '\.(c|h|orc|py)$')
else
    files=$(find engine gst orc tools -type f \( -name '*.c' -o -name '*.h' -o -name '*.orc' -o -name '*.py' \))
fi
missing=0 n=0
for f in $files; do
    n=$((n + 1))
    base=$(basename "$f")
    if ! grep -qF "$base\`" "$doc"; then
        echo "not in $doc: $f"; missing=$((missing + 1))
    fi
done
# files the map names in backticks that do not exist anywhere in the tree
stale=0
for name in $(grep -oE '`[A-Za-z0-9_./-]+\.(c|h|orc|py|sh)`' "$doc" | tr -d '`' | sort -u); do
    if ! find . -path ./build\* -prune -o -path ./node_modules -prune -o -name "$(basename "$name")" -print -quit | grep -q .; then
        echo "named in $doc but absent: $name"; stale=$((stale + 1))
    fi
done
echo "$((n - missing)) passed, $((missing + stale)) failed"
[ $missing -eq 0 ] && [ $stale -eq 0 ]
