/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Host routing at the pod's veth: pod_egress, at tcx ingress of the host end of every pod's veth,
 * decides on what the pod sends. Linked with bpf_host.c and bpf_sock.c into the datapath object. */
#include "common.h"
#include "maps.h"
#include "counters.h"
#include "parse.h"
#include "endpoints.h"
#include "fib.h"
#include "masquerade.h"
#include "addresses.h"
#include "nat.h"

/* The pod's source address must be its own, on its own veth, with its own MAC. */
static __always_inline int source_is_endpoint(const struct packet *pkt, const struct sp_endpoint *ep)
{
	if (!ep || ep->ifindex != pkt->ifindex)
		return SP_DROP_SPOOFED_SOURCE;
	if (!mac_equal(pkt->eth->h_source, ep->pod_mac))
		return SP_DROP_SPOOFED_MAC;
	return 0;
}

SEC("tc")
int pod_egress(struct __sk_buff *skb)
{
	struct packet pkt;
	int verdict;
	int why = parse_routable(skb, &pkt);

	if (why != SP_PARSED)
		return conclude(&pkt, why);

	if (pkt.ip4) {
		struct iphdr *ip = pkt.ip4;
		int spoofed = source_is_endpoint(&pkt, endpoint4(ip->saddr));

		if (spoofed)
			return drop(&pkt, spoofed);
		if (ip4_is_special(ip->daddr))
			return to_stack(&pkt, SP_STACK_NOT_UNICAST);
		if (ip->ttl <= 1)
			return to_stack(&pkt, SP_STACK_TTL);
		struct sp_endpoint *dst = endpoint4(ip->daddr);
		if (dst) {
			ip4_decrease_ttl(ip);
			return deliver_local(&pkt, dst);
		}
		if (reply_to_outside(skb, &pkt, &verdict))
			return verdict;
		if (leaves_cluster4(ip->daddr))
			return to_stack(&pkt, SP_STACK_MASQUERADE);
	} else {
		struct ipv6hdr *ip6 = pkt.ip6;

		/* Never true after parse(); the verifier, which may explore the IPv4 pointer as null,
		 * needs to see this one tested. */
		if (!ip6)
			return drop(&pkt, SP_DROP_MALFORMED);
		int spoofed = source_is_endpoint(&pkt, endpoint6(&ip6->saddr));

		if (spoofed)
			return drop(&pkt, spoofed);
		if (ip6_is_special(&ip6->daddr))
			return to_stack(&pkt, SP_STACK_NOT_UNICAST);
		if (ip6->hop_limit <= 1)
			return to_stack(&pkt, SP_STACK_TTL);
		struct sp_endpoint *dst = endpoint6(&ip6->daddr);
		if (dst) {
			ip6->hop_limit--;
			return deliver_local(&pkt, dst);
		}
		if (reply_to_outside(skb, &pkt, &verdict))
			return verdict;
		if (leaves_cluster6(&ip6->daddr))
			return to_stack(&pkt, SP_STACK_MASQUERADE);
	}
	return forward_via_fib(skb, &pkt);
}
