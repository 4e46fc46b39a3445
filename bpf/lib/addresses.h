/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Addresses no router forwards to or from: what the datapath leaves to the stack as a
 * destination, and drops as a source arriving from outside the node. */
#pragma once
#include "endpoints.h"

#define SP_IP4(a, b, c, d) bpf_htonl(((__u32)(a) << 24) | ((__u32)(b) << 16) | ((__u32)(c) << 8) | (__u32)(d))

static __always_inline int ip4_in(__u32 addr, __u32 network, __u32 prefix_len)
{
	__u32 mask = bpf_htonl(~0u << (32 - prefix_len));

	return (addr & mask) == network;
}

/* 0.0.0.0/8, 127.0.0.0/8, 169.254.0.0/16 (link-local), 224.0.0.0/4 (multicast) and 240.0.0.0/4
 * (reserved, with the limited broadcast 255.255.255.255). */
static __always_inline int ip4_is_special(__u32 addr)
{
	return ip4_in(addr, SP_IP4(0, 0, 0, 0), 8) || ip4_in(addr, SP_IP4(127, 0, 0, 0), 8)
	       || ip4_in(addr, SP_IP4(169, 254, 0, 0), 16) || ip4_in(addr, SP_IP4(224, 0, 0, 0), 3);
}

/* :: and ::1, ::ffff:0:0/96 (IPv4-mapped), fe80::/10 (link-local) and ff00::/8 (multicast). */
static __always_inline int ip6_is_special(const struct in6_addr *addr)
{
	__u32 first = addr->in6_u.u6_addr32[0];

	if (addr->in6_u.u6_addr8[0] == 0xff)
		return 1;
	if ((first & bpf_htonl(0xffc00000)) == bpf_htonl(0xfe800000))
		return 1;
	if (first == 0 && addr->in6_u.u6_addr32[1] == 0) {
		__u32 third = addr->in6_u.u6_addr32[2], fourth = addr->in6_u.u6_addr32[3];

		return third == bpf_htonl(0xffff) || (third == 0 && (fourth == 0 || fourth == bpf_htonl(1)));
	}
	return 0;
}

/* A source from outside that cannot be a sender's, or is a local pod's own address, or this
 * node's own. */
static __always_inline int ip4_is_martian_source(__u32 saddr)
{
	return ip4_is_special(saddr) || endpoint4(saddr) || bpf_map_lookup_elem(&sp_local4, &saddr);
}

static __always_inline int ip6_is_martian_source(const struct in6_addr *saddr)
{
	return ip6_is_special(saddr) || endpoint6(saddr) || bpf_map_lookup_elem(&sp_local6, saddr);
}
