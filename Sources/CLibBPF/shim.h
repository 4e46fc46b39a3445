// SPDX-License-Identifier: Apache-2.0
#pragma once
// libbpf's low-level API (maps, objects, pins, links), linked statically by the BPF target.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>

// Attach types newer than the oldest linux/bpf.h swiftpath builds against (Debian 12's, Linux 6.1).
// They are kernel ABI (enum bpf_attach_type since Linux 6.6) and fixed forever; ABITests checks
// them against the running kernel's BTF.
enum swiftpath_tcx_attach_type {
    SWIFTPATH_BPF_TCX_INGRESS = 46,
    SWIFTPATH_BPF_TCX_EGRESS = 47,
};
