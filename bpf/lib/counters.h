/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Per-device counters of every path a packet can take, so that "fast path taken" is a number
 * an operator can read, not a belief. */
#pragma once
#include "maps.h"

/* A packet being decided on. The skb fields the counters need are read once, at parse time:
 * clang may otherwise keep a pointer into the context across calls, which the verifier refuses. */
struct packet {
	__u32 ifindex;
	__u32 len;
	__u32 pkt_type;		/* PACKET_HOST, PACKET_BROADCAST, ... */
	__u32 vlan_present;	/* the receive path took an 802.1Q tag off the frame into the skb */
	struct ethhdr *eth;
	struct iphdr *ip4;	/* the fixed IP header, once whole: see parse() */
	struct ipv6hdr *ip6;
};

static __always_inline void count(const struct packet *pkt, enum sp_path path)
{
	struct sp_counter_key key = { .ifindex = pkt->ifindex, .path = path };
	struct sp_counter *counter = bpf_map_lookup_elem(&sp_counters, &key);

	if (counter) {
		counter->packets++;
		counter->bytes += pkt->len;
		return;
	}
	struct sp_counter first = { .packets = 1, .bytes = pkt->len };
	bpf_map_update_elem(&sp_counters, &key, &first, BPF_NOEXIST);
}

/* Hands the packet to the stack, saying why. */
static __always_inline int to_stack(const struct packet *pkt, enum sp_path why)
{
	count(pkt, why);
	return TC_ACT_OK;
}

static __always_inline int drop(const struct packet *pkt, enum sp_path why)
{
	count(pkt, why);
	return TC_ACT_SHOT;
}

/* The program's last word on a packet it does not forward, for a reason found on the way
 * (parse(), addressed_to_device()): counted under it, then dropped or handed to the stack. */
static __always_inline int conclude(const struct packet *pkt, enum sp_path why)
{
	switch (why) {
	case SP_DROP_SPOOFED_SOURCE:
	case SP_DROP_SPOOFED_MAC:
	case SP_DROP_MALFORMED:
	case SP_DROP_OTHER_HOST:
	case SP_DROP_MARTIAN_SOURCE:
	case SP_DROP_NOT_IP:
	case SP_DROP_ROUTER_MESSAGE:
	case SP_DROP_EXTENSION_CHAIN:
		return drop(pkt, why);
	default:
		return to_stack(pkt, why);
	}
}
