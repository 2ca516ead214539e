#!/usr/bin/env bash
# On the lent GPU machine: unpacks what scripts/gpu-bundle.sh packed into .gpu/ (node, Dawn, the
# Vulkan loader) and points Vulkan at the NVIDIA driver. Source it: `. .gpu/gpu-setup.sh`.
set -e
for f in .gpu/debs/*.deb; do dpkg -x "$f" /; done
ldconfig
mkdir -p /tmp/gpu-bin
xz -dc .gpu/node.xz > /tmp/gpu-bin/node && chmod +x /tmp/gpu-bin/node
xz -dkf .gpu/pkg/node_modules/webgpu/dist/linux-x64/dawn.node.xz
export PATH=/tmp/gpu-bin:$PATH
export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
set +e
