#!/usr/bin/env bash
# The corpus of the built-in model: the fortune cookies of Debian bookworm's `fortunes` and
# `fortunes-min` packages (version 1:1.99.1-7.3), one text file per fortune database, unpacked
# into corpus/fortunes/ (or the folder given). Needs Debian's package sources (apt-get download
# works without root); checks the packages' versions so that the corpus is the same everywhere.
set -euo pipefail
out="${1:-corpus/fortunes}"
version='1:1.99.1-7.3'
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get download -q "fortunes=$version" "fortunes-min=$version" >/dev/null 2>&1 ||
  apt-get download "fortunes=$version" "fortunes-min=$version")
for deb in "$work"/*.deb; do dpkg-deb -x "$deb" "$work/root"; done
mkdir -p "$out"
src="$work/root/usr/share/games/fortunes"
count=0
for file in "$src"/*; do
  name="$(basename "$file")"
  # *.dat are strfile indexes; *.u8 are links to the same text.
  case "$name" in *.dat | *.u8) continue ;; esac
  [ -f "$file" ] && [ ! -L "$file" ] || continue
  cp "$file" "$out/$name.txt"
  count=$((count + 1))
done
echo "corpus: $count files, $(cat "$out"/*.txt | wc -c) bytes in $out" >&2
