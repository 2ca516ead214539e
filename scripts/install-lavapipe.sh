#!/usr/bin/env bash
# Installs Mesa's lavapipe (a CPU Vulkan driver) from bookworm-backports, so that Dawn's Vulkan
# backend (the npm package `webgpu`) finds an adapter on machines without a GPU: CI and developer
# machines. Bookworm's own Mesa 22.3 is refused by Dawn. Idempotent; needs root.
set -euo pipefail
if dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null | grep -q '^25'; then exit 0; fi
sources=/etc/apt/sources.list.d/debian.sources
if [ -f "$sources" ] && ! grep -q 'bookworm-backports' "$sources"; then
  sed -i '0,/^Suites: bookworm bookworm-updates$/s//Suites: bookworm bookworm-updates bookworm-backports/' "$sources"
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq -t bookworm-backports mesa-vulkan-drivers >/dev/null
