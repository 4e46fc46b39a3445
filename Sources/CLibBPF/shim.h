// SPDX-License-Identifier: Apache-2.0
#pragma once
// libbpf's low-level API (maps, objects, pins). Linked statically by the EndpointStore target.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
