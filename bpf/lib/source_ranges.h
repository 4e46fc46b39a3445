/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* loadBalancerSourceRanges at the uplinks: a frontend that lists source ranges opens connections
 * only for clients inside them. Checked when a connection opens; its later packets follow the
 * connection table, as kube-proxy's conntrack keeps an accepted connection through a range change. */
#pragma once
#include "common.h"

#define SP_MAX_SOURCE_RANGES 65536

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct sp_source_range_key);
	__type(value, __u8);			/* SP_SOURCE_DENIED or SP_SOURCE_ALLOWED */
	__uint(max_entries, SP_MAX_SOURCE_RANGES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} sp_source_ranges SEC(".maps") __weak;

/* Whether a client at `saddr` (16 bytes, IPv4 in the first four) may open a connection to
 * `frontend`. */
static __always_inline int source_allowed(const struct sp_service_key *frontend, const __u8 *saddr)
{
	struct sp_source_range_key key = {
		.prefixlen = SP_SOURCE_RANGE_FRONTEND_BITS + 128,
		.frontend = *frontend,
	};
	__u8 *verdict;

	__builtin_memcpy(key.addr, saddr, 16);
	verdict = bpf_map_lookup_elem(&sp_source_ranges, &key);
	return !verdict || *verdict == SP_SOURCE_ALLOWED;
}
