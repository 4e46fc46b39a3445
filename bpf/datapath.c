/* swiftpath host routing. Two programs, both at tcx ingress:
 *   pod_egress      on the host end of every pod's veth: what the pod sends;
 *   uplink_ingress  on the node's uplinks: what arrives for the node's pods. */
#include "common.h"
#include "maps.h"
#include "counters.h"
#include "parse.h"
#include "endpoints.h"
#include "fib.h"
#include "masquerade.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

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
	int verdict = parse(skb, &pkt);

	if (verdict != SP_PARSED)
		return verdict;

	if (pkt.ip4) {
		struct iphdr *ip = pkt.ip4;
		int spoofed = source_is_endpoint(&pkt, endpoint4(ip->saddr));

		if (spoofed)
			return drop(&pkt, spoofed);
		if (ip->ttl <= 1)
			return to_stack(&pkt, SP_STACK_TTL);
		struct sp_endpoint *dst = endpoint4(ip->daddr);
		if (dst) {
			ip4_decrease_ttl(ip);
			return deliver_local(&pkt, dst);
		}
		if (leaves_cluster4(ip->daddr))
			return to_stack(&pkt, SP_STACK_MASQUERADE);
	} else {
		struct ipv6hdr *ip6 = pkt.ip6;
		int spoofed = source_is_endpoint(&pkt, endpoint6(&ip6->saddr));

		if (spoofed)
			return drop(&pkt, spoofed);
		if (ip6->hop_limit <= 1)
			return to_stack(&pkt, SP_STACK_TTL);
		struct sp_endpoint *dst = endpoint6(&ip6->daddr);
		if (dst) {
			ip6->hop_limit--;
			return deliver_local(&pkt, dst);
		}
		if (leaves_cluster6(&ip6->daddr))
			return to_stack(&pkt, SP_STACK_MASQUERADE);
	}
	return forward_via_fib(skb, &pkt);
}

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

	if ((void *)(eth + 1) > data_end)
		return TC_ACT_UNSPEC;
	if (eth->h_proto != bpf_htons(ETH_P_IP) && eth->h_proto != bpf_htons(ETH_P_IPV6))
		return TC_ACT_UNSPEC;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);

		if ((void *)(ip + 1) > data_end || !(dst = endpoint4(ip->daddr)))
			return TC_ACT_UNSPEC;
	} else {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > data_end || !(dst = endpoint6(&ip6->daddr)))
			return TC_ACT_UNSPEC;
	}

	/* For a local pod: now the full checks. */
	int verdict = parse(skb, &pkt);

	if (verdict != SP_PARSED)
		return verdict;
	if (pkt.ip4) {
		if (pkt.ip4->ttl <= 1)
			return to_stack(&pkt, SP_STACK_TTL);
		ip4_decrease_ttl(pkt.ip4);
	} else {
		if (pkt.ip6->hop_limit <= 1)
			return to_stack(&pkt, SP_STACK_TTL);
		pkt.ip6->hop_limit--;
	}
	return deliver_local(&pkt, dst);
}
