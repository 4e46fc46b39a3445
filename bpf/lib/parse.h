/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Packet parsing with the bounds checks the verifier wants, and the stated rules for what is not
 * forwarded in BPF: truncated or inconsistent headers (and IPv4 headers whose checksum is wrong,
 * which the stack would drop) are dropped; IPv4 options, fragments and IPv6 extension headers go
 * to the stack, which handles them correctly if slowly. */
#pragma once
#include "counters.h"

/* Not a reason (enum sp_path): the packet is for the datapath to decide on. */
#define SP_PARSED 0

/* The one's-complement sum of the 20-byte IPv4 header, its checksum field included, is all ones
 * exactly when the checksum is right. */
static __always_inline int ip4_checksum_ok(const struct iphdr *ip)
{
	const __u16 *word = (const __u16 *)ip;
	__u32 sum = 0;

#pragma unroll
	for (int i = 0; i < (int)(sizeof(*ip) / 2); i++)
		sum += word[i];
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return sum == 0xffff;
}

/* Returns SP_PARSED, or the reason (enum sp_path) the datapath does not forward the packet itself;
 * the program concludes with it (counts it, then drops or hands on). The IP header is set once the
 * fixed header is whole and its lengths consistent, even when a reason follows (options, a
 * fragment, an extension header): the pod's source check reads it before any hand-off. */
static __always_inline int parse(struct __sk_buff *skb, struct packet *pkt)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;

	pkt->ifindex = skb->ifindex;
	pkt->len = skb->len;
	pkt->pkt_type = skb->pkt_type;
	pkt->vlan_present = skb->vlan_present;
	if ((void *)(eth + 1) > data_end)
		return SP_DROP_MALFORMED;
	pkt->eth = eth;
	pkt->ip4 = 0;
	pkt->ip6 = 0;

	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);

		if ((void *)(ip + 1) > data_end)
			return SP_DROP_MALFORMED;
		/* Lengths are checked against skb->len, not data_end: a GSO packet's payload sits in
		 * fragments beyond the linear part. */
		if (ip->version != 4 || ip->ihl < 5 || bpf_ntohs(ip->tot_len) < ip->ihl * 4
		    || bpf_ntohs(ip->tot_len) > pkt->len - sizeof(*eth))
			return SP_DROP_MALFORMED;
		pkt->ip4 = ip;
		if (ip->ihl != 5)
			return SP_STACK_IP_OPTIONS;
		if (!ip4_checksum_ok(ip))
			return SP_DROP_MALFORMED;
		if (ip->frag_off & bpf_htons(0x3fff))	/* MF or an offset */
			return SP_STACK_FRAGMENT;
		return SP_PARSED;
	}
	if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > data_end)
			return SP_DROP_MALFORMED;
		if (ip6->version != 6 || bpf_ntohs(ip6->payload_len) > pkt->len - sizeof(*eth) - sizeof(*ip6))
			return SP_DROP_MALFORMED;
		pkt->ip6 = ip6;
		switch (ip6->nexthdr) {
		case IPPROTO_TCP:
		case IPPROTO_UDP:
			break;
		case IPPROTO_ICMPV6: {
			struct icmp6hdr *icmp = (void *)(ip6 + 1);

			if ((void *)(icmp + 1) > data_end)
				return SP_DROP_MALFORMED;
			/* Router and neighbour discovery: 133 to 137. */
			if (icmp->icmp6_type >= 133 && icmp->icmp6_type <= 137)
				return SP_STACK_ICMP6_ND;
			break;
		}
		default:
			return SP_STACK_IPV6_EXTENSION;
		}
		return SP_PARSED;
	}
	return SP_STACK_NOT_IP;
}

/* Where a frame is addressed (skb->pkt_type, which the device's receive path set from the
 * Ethernet destination): SP_PARSED for this device's own MAC, else the reason not to forward it.
 * Broadcast and multicast frames are the stack's business; a frame for another host is no router's. */
static __always_inline int addressed_to_device(const struct packet *pkt)
{
	if (pkt->pkt_type == PACKET_HOST)
		return SP_PARSED;
	if (pkt->pkt_type == PACKET_BROADCAST || pkt->pkt_type == PACKET_MULTICAST)
		return SP_STACK_NOT_UNICAST;
	return SP_DROP_OTHER_HOST;
}

/* What both host-routing programs ask first: SP_PARSED for a packet they may route (parsed, and
 * sent to this device), else the reason they conclude with. */
static __always_inline int parse_routable(struct __sk_buff *skb, struct packet *pkt)
{
	int why = parse(skb, pkt);

	return why == SP_PARSED ? addressed_to_device(pkt) : why;
}
