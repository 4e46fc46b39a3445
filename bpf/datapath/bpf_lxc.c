/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Host routing at the pod's veth: pod_egress, at tcx ingress of the host end of every pod's veth,
 * decides on what the pod sends, once pod_source.h has found the pod may send it. Linked with
 * bpf_host.c and bpf_sock.c into the datapath object. */
#include "common.h"
#include "maps.h"
#include "counters.h"
#include "parse.h"
#include "endpoints.h"
#include "fib.h"
#include "masquerade.h"
#include "addresses.h"
#include "nat.h"
#include "pod_source.h"

SEC("tc")
int pod_egress(struct __sk_buff *skb)
{
	struct packet pkt;
	int verdict;
	int why = parse(skb, &pkt);

	/* Whatever happens to a frame next, its source is checked first. */
	if (why != SP_DROP_MALFORMED) {
		int forged = forged_by_pod(skb, &pkt);

		if (forged)
			return drop(&pkt, forged);
	}
	if (why == SP_PARSED)
		why = addressed_to_device(&pkt);
	if (why != SP_PARSED)
		return conclude(&pkt, why);

	if (pkt.ip4) {
		struct iphdr *ip = pkt.ip4;

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
