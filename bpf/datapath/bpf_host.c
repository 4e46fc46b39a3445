/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Host routing at the node's uplinks: uplink_ingress, at tcx ingress of each uplink, delivers what
 * arrives for the node's pods straight to their veth's peer, and translates connections from
 * outside to the services the node answers (nat.h). */
#include "common.h"
#include "maps.h"
#include "counters.h"
#include "parse.h"
#include "endpoints.h"
#include "addresses.h"
#include "nat.h"

SEC("tc")
int uplink_ingress(struct __sk_buff *skb)
{
	struct packet pkt;
	struct sp_endpoint *dst = 0;

	/* Not ours to judge: anything the datapath does not deliver goes on to the next program
	 * on the device (or the stack), unchanged and uncounted unless it is for a pod. */
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;

	/* A frame that came tagged is for a VLAN device above the uplink, not for the node's pods. */
	if (skb->vlan_present || (void *)(eth + 1) > data_end)
		return TC_ACT_UNSPEC;
	if (eth->h_proto != bpf_htons(ETH_P_IP) && eth->h_proto != bpf_htons(ETH_P_IPV6))
		return TC_ACT_UNSPEC;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);

		if ((void *)(ip + 1) > data_end)
			return TC_ACT_UNSPEC;
		if (!(dst = endpoint4(ip->daddr)))
			return from_outside(skb);
	} else {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > data_end)
			return TC_ACT_UNSPEC;
		if (!(dst = endpoint6(&ip6->daddr)))
			return from_outside(skb);
	}

	/* For a local pod: now the full checks. */
	int why = parse_routable(skb, &pkt);

	if (why != SP_PARSED)
		return conclude(&pkt, why);
	if (pkt.ip4) {
		if (ip4_is_martian_source(pkt.ip4->saddr))
			return drop(&pkt, SP_DROP_MARTIAN_SOURCE);
		if (ip4_is_special(pkt.ip4->daddr))
			return to_stack(&pkt, SP_STACK_NOT_UNICAST);
		if (pkt.ip4->ttl <= 1)
			return to_stack(&pkt, SP_STACK_TTL);
		ip4_decrease_ttl(pkt.ip4);
	} else if (pkt.ip6) {
		if (ip6_is_martian_source(&pkt.ip6->saddr))
			return drop(&pkt, SP_DROP_MARTIAN_SOURCE);
		if (ip6_is_special(&pkt.ip6->daddr))
			return to_stack(&pkt, SP_STACK_NOT_UNICAST);
		if (pkt.ip6->hop_limit <= 1)
			return to_stack(&pkt, SP_STACK_TTL);
		pkt.ip6->hop_limit--;
	} else {
		return drop(&pkt, SP_DROP_MALFORMED);	/* never: parse() set one of them */
	}
	forget_stale_reply(skb, &pkt);
	return deliver_local(&pkt, dst);
}
