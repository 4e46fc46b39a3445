/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* With masquerading on, traffic to destinations outside the cluster's CIDRs and nodes goes to the
 * stack, where swiftpath's own SNAT rule rewrites its source. */
#pragma once
#include "maps.h"

static __always_inline int masquerade_enabled(void)
{
	__u32 zero = 0;
	struct sp_node_config *node = bpf_map_lookup_elem(&sp_node, &zero);

	return node && (node->flags & SP_NODE_MASQUERADE);
}

static __always_inline int leaves_cluster4(__u32 daddr)
{
	struct sp_lpm4 key = { .prefixlen = 32, .addr = daddr };

	return masquerade_enabled() && !bpf_map_lookup_elem(&sp_cluster4, &key) && !bpf_map_lookup_elem(&sp_nodes4, &daddr);
}

static __always_inline int leaves_cluster6(const struct in6_addr *daddr)
{
	struct sp_lpm6 key = { .prefixlen = 128 };

	__builtin_memcpy(key.addr, daddr, sizeof(key.addr));
	return masquerade_enabled() && !bpf_map_lookup_elem(&sp_cluster6, &key) && !bpf_map_lookup_elem(&sp_nodes6, daddr);
}
