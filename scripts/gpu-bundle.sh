#!/usr/bin/env bash
# Builds .gpu/: what the lent GPU machine (no Node, no network) needs to run mamba-ts there: the
# node binary (xz), the compiled package, its runtime npm packages with only Dawn's linux-x64
# binary, and the Vulkan loader from Debian (amd64). See GPU-NOTES.md. Run from the repo root.
set -euo pipefail
rm -rf .gpu && mkdir -p .gpu/pkg/node_modules .gpu/debs
grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
npm run build >/dev/null
xz -T0 -6 -c "$(readlink -f "$(command -v node)")" > .gpu/node.xz
cp -r dist package.json .gpu/pkg/
mkdir -p .gpu/pkg/node_modules/webgpu/dist/linux-x64 .gpu/pkg/node_modules/@huggingface
cp node_modules/webgpu/{index.js,package.json} .gpu/pkg/node_modules/webgpu/
xz -T0 -6 -c node_modules/webgpu/dist/linux-x64/dawn.node > .gpu/pkg/node_modules/webgpu/dist/linux-x64/dawn.node.xz
cp -r node_modules/@huggingface/tokenizers .gpu/pkg/node_modules/@huggingface/
o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
mkdir -p /tmp/amd64/partial
apt-get $o update -qq
(cd .gpu/debs && apt-get $o download libvulkan1 libglvnd0 libglx0 libgl1 libegl1 libopengl0 libgles2 >/dev/null)
cp scripts/gpu-setup.sh .gpu/
du -sh .gpu
