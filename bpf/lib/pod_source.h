/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* What a pod may send at all: frames from its own MAC on its own veth, carrying its own addresses.
 * Checked on every frame, whatever the datapath then does with it: what goes to the stack (options,
 * fragments, extension headers, broadcasts, ARP, neighbour discovery) is trusted by the stack as
 * much as what the datapath forwards. Besides a source, a pod may not act as a router: no router
 * advertisements or redirects. */
#pragma once
#include "endpoints.h"

/* IPv6 extension headers the datapath walks to find the upper-layer header of a pod's packet.
 * A longer chain is dropped: nothing a pod legitimately sends needs one. */
#define SP_IPV6_MAX_EXTENSIONS 4

#define SP_ICMP_REDIRECT 5
#define SP_ICMP_ROUTER_ADVERTISEMENT 9
#define SP_ICMP6_ROUTER_ADVERTISEMENT 134
#define SP_ICMP6_REDIRECT 137

#define SP_ARP_HRD_ETHER 1

/* An ARP packet for IPv4 over Ethernet, the only kind a pod's veth carries. */
struct sp_arp_ip4 {
	__be16 hardware;
	__be16 protocol;
	__u8 hardware_len;
	__u8 protocol_len;
	__be16 op;
	__u8 sender_mac[ETH_ALEN];
	__u8 sender_ip[4];
	__u8 target_mac[ETH_ALEN];
	__u8 target_ip[4];
} __attribute__((packed));

/* The pod behind the host end a frame arrived on (by device, not by address): who may send
 * from a link-local or unspecified IPv6 address there. */
static __always_inline struct sp_endpoint *pod_device(__u32 ifindex)
{
	return bpf_map_lookup_elem(&sp_pod_devices, &ifindex);
}

/* The pod's source must be its own, on its own veth, with its own MAC. */
static __always_inline int source_is_endpoint(const struct packet *pkt, const struct sp_endpoint *ep)
{
	if (!ep || ep->ifindex != pkt->ifindex)
		return SP_DROP_SPOOFED_SOURCE;
	if (!mac_equal(pkt->eth->h_source, ep->pod_mac))
		return SP_DROP_SPOOFED_MAC;
	return 0;
}

static __always_inline int ip6_is_link_local(const struct in6_addr *addr)
{
	return (addr->in6_u.u6_addr32[0] & bpf_htonl(0xffc00000)) == bpf_htonl(0xfe800000);
}

static __always_inline int ip6_is_unspecified(const struct in6_addr *addr)
{
	return !(addr->in6_u.u6_addr32[0] | addr->in6_u.u6_addr32[1] | addr->in6_u.u6_addr32[2] | addr->in6_u.u6_addr32[3]);
}

/* ff01::/16 and ff02::/16 (interface- and link-local scope): where neighbour discovery, DAD and
 * MLD send, and no router forwards. */
static __always_inline int ip6_is_link_scope_multicast(const struct in6_addr *addr)
{
	return addr->in6_u.u6_addr8[0] == 0xff && (addr->in6_u.u6_addr8[1] & 0x0f) <= 2;
}

/* ARP says who has an address: only the pod's own, from its own MAC, is believed (an ARP probe,
 * sender 0.0.0.0, is no pod's: its addresses come from IPAM, never from probing). */
static __always_inline int arp_forged(struct __sk_buff *skb, const struct packet *pkt)
{
	struct sp_arp_ip4 *arp = (void *)(pkt->eth + 1);

	if ((void *)(arp + 1) > (void *)(long)skb->data_end)
		return SP_DROP_MALFORMED;
	if (arp->hardware != bpf_htons(SP_ARP_HRD_ETHER) || arp->protocol != bpf_htons(ETH_P_IP)
	    || arp->hardware_len != ETH_ALEN || arp->protocol_len != 4)
		return SP_DROP_MALFORMED;
	const struct sp_endpoint *ep = endpoint4(*(__u32 *)arp->sender_ip);
	int spoofed = source_is_endpoint(pkt, ep);

	if (spoofed)
		return spoofed;
	return mac_equal(arp->sender_mac, ep->pod_mac) ? 0 : SP_DROP_SPOOFED_MAC;
}

/* The ICMP type at `offset`, or -1 when the packet ends before it. */
static __always_inline int icmp_type_at(struct __sk_buff *skb, __u32 offset)
{
	__u8 type;

	return bpf_skb_load_bytes(skb, offset, &type, sizeof(type)) ? -1 : type;
}

static __always_inline int ip4_forged(struct __sk_buff *skb, const struct packet *pkt)
{
	const struct iphdr *ip = pkt->ip4;
	int spoofed = source_is_endpoint(pkt, endpoint4(ip->saddr));

	if (spoofed)
		return spoofed;
	/* A later fragment carries no ICMP header to read. */
	if (ip->protocol != IPPROTO_ICMP || (ip->frag_off & bpf_htons(0x1fff)))
		return 0;
	int type = icmp_type_at(skb, sizeof(struct ethhdr) + ip->ihl * 4);

	return type == SP_ICMP_REDIRECT || type == SP_ICMP_ROUTER_ADVERTISEMENT ? SP_DROP_ROUTER_MESSAGE : 0;
}

/* Walks the extension headers to the upper-layer header: a router advertisement or a redirect
 * hidden behind options is still one. */
static __always_inline int ip6_router_message(struct __sk_buff *skb, const struct ipv6hdr *ip6)
{
	__u32 offset = sizeof(struct ethhdr) + sizeof(struct ipv6hdr);
	__u8 next = ip6->nexthdr;

#pragma unroll
	for (int i = 0; i <= SP_IPV6_MAX_EXTENSIONS; i++) {
		__u8 ext[4];

		switch (next) {
		case IPPROTO_ICMPV6: {
			int type = icmp_type_at(skb, offset);

			if (type < 0)
				return SP_DROP_MALFORMED;
			return type == SP_ICMP6_ROUTER_ADVERTISEMENT || type == SP_ICMP6_REDIRECT ? SP_DROP_ROUTER_MESSAGE : 0;
		}
		case IPPROTO_HOPOPTS:
		case IPPROTO_ROUTING:
		case IPPROTO_DSTOPTS:
			if (i == SP_IPV6_MAX_EXTENSIONS)
				return SP_DROP_EXTENSION_CHAIN;
			if (bpf_skb_load_bytes(skb, offset, ext, 2))
				return SP_DROP_MALFORMED;
			next = ext[0];
			offset += (ext[1] + 1) * 8;
			break;
		case IPPROTO_FRAGMENT:
			if (i == SP_IPV6_MAX_EXTENSIONS)
				return SP_DROP_EXTENSION_CHAIN;
			if (bpf_skb_load_bytes(skb, offset, ext, 4))
				return SP_DROP_MALFORMED;
			/* A later fragment: the stack reassembles it, and drops neighbour discovery that
			 * came in fragments (RFC 6980). */
			if ((ext[2] << 8 | ext[3]) & 0xfff8)
				return 0;
			next = ext[0];
			offset += 8;
			break;
		default:
			return 0;
		}
	}
	return SP_DROP_EXTENSION_CHAIN;
}

static __always_inline int ip6_forged(struct __sk_buff *skb, const struct packet *pkt)
{
	const struct ipv6hdr *ip6 = pkt->ip6;
	const struct sp_endpoint *own = endpoint6(&ip6->saddr);
	int spoofed;

	if (own) {
		spoofed = source_is_endpoint(pkt, own);
	} else if (ip6_is_link_local(&ip6->saddr) || ip6_is_unspecified(&ip6->saddr)) {
		/* Neighbour discovery, DAD and MLD speak from these: believed from the pod's own device
		 * and MAC, and only on the link (no router forwards them off it). */
		spoofed = source_is_endpoint(pkt, pod_device(pkt->ifindex));
		if (!spoofed && !ip6_is_link_local(&ip6->daddr) && !ip6_is_link_scope_multicast(&ip6->daddr))
			spoofed = SP_DROP_SPOOFED_SOURCE;
	} else {
		spoofed = SP_DROP_SPOOFED_SOURCE;
	}
	if (spoofed)
		return spoofed;
	if (ip6->nexthdr == IPPROTO_TCP || ip6->nexthdr == IPPROTO_UDP)
		return 0;
	return ip6_router_message(skb, ip6);
}

/* 0 when the frame is one the pod may send, else the reason to drop it. Runs after parse(),
 * which set the IP header of any IP packet whose fixed header is whole. */
static __always_inline int forged_by_pod(struct __sk_buff *skb, const struct packet *pkt)
{
	/* A pod's veth carries no VLANs: a tagged frame (the tag already off the data, in the skb)
	 * would leave the node, or reach another pod, on a VLAN of the pod's choosing. */
	if (pkt->vlan_present)
		return SP_DROP_NOT_IP;
	if (pkt->ip4)
		return ip4_forged(skb, pkt);
	if (pkt->ip6)
		return ip6_forged(skb, pkt);
	if (pkt->eth->h_proto == bpf_htons(ETH_P_ARP))
		return arp_forged(skb, pkt);
	return SP_DROP_NOT_IP;
}
