/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Leaving the node: the kernel's FIB picks the device and next hop, the datapath sends the packet
 * straight to that device's egress, past the host's upper stack, netfilter and backlog queue. */
#pragma once
#include "endpoints.h"
#include "parse.h"

static __always_inline void decrease_hop_limit(struct packet *pkt)
{
	/* Both pointers are tested: across the FIB helper call the verifier no longer knows that
	 * exactly one of them is set. */
	if (pkt->ip4)
		ip4_decrease_ttl(pkt->ip4);
	else if (pkt->ip6)
		pkt->ip6->hop_limit--;
}

static __always_inline int forward_via_fib(struct __sk_buff *skb, struct packet *pkt)
{
	/* tot_len stays 0: the kernel then checks the MTU against the skb itself, which knows a GSO
	 * packet will be segmented; a tot_len of a 64 KB super-packet would fail the check. */
	struct bpf_fib_lookup fib = { .ifindex = pkt->ifindex };

	if (pkt->ip4) {
		fib.family = AF_INET;
		fib.tos = pkt->ip4->tos;
		fib.l4_protocol = pkt->ip4->protocol;
		fib.ipv4_src = pkt->ip4->saddr;
		fib.ipv4_dst = pkt->ip4->daddr;
	} else if (pkt->ip6) {
		fib.family = AF_INET6;
		fib.flowinfo = *(__be32 *)pkt->ip6 & bpf_htonl(0x0fffffff);
		fib.l4_protocol = pkt->ip6->nexthdr;
		__builtin_memcpy(fib.ipv6_src, &pkt->ip6->saddr, sizeof(fib.ipv6_src));
		__builtin_memcpy(fib.ipv6_dst, &pkt->ip6->daddr, sizeof(fib.ipv6_dst));
	} else {
		return drop(pkt, SP_DROP_MALFORMED);	/* never: parse() set one of them */
	}

	long status = bpf_fib_lookup(skb, &fib, sizeof(fib), 0);

	if (status == BPF_FIB_LKUP_RET_SUCCESS) {
		decrease_hop_limit(pkt);
		__builtin_memcpy(pkt->eth->h_dest, fib.dmac, ETH_ALEN);
		__builtin_memcpy(pkt->eth->h_source, fib.smac, ETH_ALEN);
		count(pkt, SP_REDIRECT_FIB);
		return bpf_redirect(fib.ifindex, 0);
	}
	if (status == BPF_FIB_LKUP_RET_NO_NEIGH) {
		struct bpf_redir_neigh nh = { .nh_family = fib.family };

		if (fib.family == AF_INET)
			nh.ipv4_nh = fib.ipv4_dst;	/* the lookup left the next hop here */
		else
			__builtin_memcpy(nh.ipv6_nh, fib.ipv6_dst, sizeof(nh.ipv6_nh));
		decrease_hop_limit(pkt);
		count(pkt, SP_REDIRECT_NEIGH);
		return bpf_redirect_neigh(fib.ifindex, &nh, sizeof(nh), 0);
	}
	if (status == BPF_FIB_LKUP_RET_NOT_FWDED)
		return to_stack(pkt, SP_STACK_NOT_FORWARDED);
	return to_stack(pkt, SP_STACK_FIB_OTHER);
}
