/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Local pods by address: where a packet for them goes, and what their traffic must look like. */
#pragma once
#include "counters.h"

static __always_inline struct sp_endpoint *endpoint4(__u32 addr)
{
	return bpf_map_lookup_elem(&sp_endpoints4, &addr);
}

static __always_inline struct sp_endpoint *endpoint6(const struct in6_addr *addr)
{
	return bpf_map_lookup_elem(&sp_endpoints6, addr);
}

/* By an address as the service and connection maps hold it (IPv4 in its first four bytes). */
static __always_inline struct sp_endpoint *endpoint_at(__u8 family, const __u8 *addr)
{
	return family == 4 ? endpoint4(*(const __u32 *)addr) : endpoint6((const struct in6_addr *)addr);
}

static __always_inline int mac_equal(const __u8 *a, const __u8 *b)
{
	return ((const __u16 *)a)[0] == ((const __u16 *)b)[0] && ((const __u16 *)a)[1] == ((const __u16 *)b)[1]
	       && ((const __u16 *)a)[2] == ((const __u16 *)b)[2];
}

static __always_inline void mac_copy(__u8 *to, const __u8 *from)
{
	__builtin_memcpy(to, from, ETH_ALEN);
}

/* Routers decrement TTL; so does the datapath, with the checksum fixed up incrementally. */
static __always_inline void ip4_decrease_ttl(struct iphdr *ip)
{
	__u32 check = ip->check;

	check += bpf_htons(0x0100);
	ip->check = (__u16)(check + (check >= 0xffff));
	ip->ttl--;
}

/* Into the pod behind `ep`: MACs as if the node routed it, then a netns switch ingress to ingress
 * that skips the backlog queue and keeps skb->sk and the timestamp. */
static __always_inline int deliver_local(const struct packet *pkt, const struct sp_endpoint *ep)
{
	mac_copy(pkt->eth->h_source, ep->host_mac);
	mac_copy(pkt->eth->h_dest, ep->pod_mac);
	count(pkt, SP_REDIRECT_PEER);
	return bpf_redirect_peer(ep->ifindex, 0);
}
