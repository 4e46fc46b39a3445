/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* North-south load balancing: a connection from outside the node to a service it answers at its
 * uplinks (a node port, an external IP, a LoadBalancer's ingress IP) is translated to a backend
 * here, and its replies back, by a small connection table (struct sp_tuple, struct sp_nat).
 *
 * A backend on this node sees the client's own address: its replies leave through pod_egress,
 * which translates them back. A backend on another node sees the node's address and a port of the
 * node's choosing, so that its replies come back through this node's uplink.
 *
 * A connection starts in sp_nat_new and moves to sp_nat once its client has shown that it gets the
 * backend's replies: for TCP, an ACK of the backend's SYN-ACK sequence number; for UDP, a datagram
 * after a reply. A flood from forged sources never gets that far, so it churns only sp_nat_new's
 * LRU and never evicts an established connection. A TCP reset ends a connection only near its
 * sender's sequence (seq_mark): a forged one, blind to it, is passed on and changes nothing here.
 * The tables keep no timers: the agent removes entries idle past their timeout. */
#pragma once
#include <linux/tcp.h>
#include <linux/udp.h>
#include "lb.h"
#include "fib.h"
#include "addresses.h"
#include "source_ranges.h"

/* Two entries per connection. LRU maps are allocated up front: 131,072 entries take about 19 MiB. */
#define SP_MAX_NAT_ENTRIES 131072
#define SP_MAX_NAT_NEW_ENTRIES 65536

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct sp_tuple);
	__type(value, struct sp_nat);
	__uint(max_entries, SP_MAX_NAT_ENTRIES);
} sp_nat SEC(".maps") __weak;

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct sp_tuple);
	__type(value, struct sp_nat);
	__uint(max_entries, SP_MAX_NAT_NEW_ENTRIES);
} sp_nat_new SEC(".maps") __weak;

/* The node's source ports towards backends on other nodes: below Linux's default ephemeral range
 * (32768-60999), which the node's own connections to the same backends (kubelet's probes, say)
 * take theirs from. A reply is told from the node's own traffic by its whole tuple, so a node port
 * or a listener on the same number is no conflict. */
#define SP_SNAT_PORT_MIN 1024
#define SP_SNAT_PORT_COUNT (32768 - SP_SNAT_PORT_MIN)
#define SP_SNAT_PORT_ATTEMPTS 8

/* last_seen_ns is written at most this often: a write per packet would bounce its cache line
 * between the CPUs a connection's packets arrive on. */
#define SP_NAT_REFRESH_NS 1000000000ULL

#define SP_TCP_FIN 0x01
#define SP_TCP_SYN 0x02
#define SP_TCP_RST 0x04
#define SP_TCP_ACK 0x10

/* seq_mark follows its direction in steps of at least SP_NAT_SEQ_STEP (a write per step, not per
 * packet), and never jumps further than SP_NAT_SEQ_LEAP (a step plus the largest GSO segment): a
 * forged packet cannot drag it to where a forged reset would then match. */
#define SP_NAT_SEQ_STEP (1 << 14)
#define SP_NAT_SEQ_LEAP (1 << 17)
/* A reset is believed this far behind the mark (data the peer has not acknowledged yet) and a
 * leap ahead of it: a blind guess hits one in about 11,000. */
#define SP_NAT_RESET_BEHIND (1 << 18)
/* A client's first ACK acknowledges the SYN-ACK, or, when that ACK was lost, what the backend sent
 * since, at most a window. */
#define SP_NAT_ACK_AHEAD (1 << 17)

/* What this file reads of a packet: its tuple and, for TCP, its flags and sequence numbers. */
struct flow_packet {
	struct sp_tuple tuple;
	__u8 tcp_flags;
	__u32 seq;		/* host order */
	__u32 ack_seq;
};

/* The addresses and ports of a parsed TCP or UDP packet (parse() leaves no IPv4 options and no
 * IPv6 extension headers before them); 0 for anything else, or a transport header cut short. */
static __always_inline int read_flow(struct __sk_buff *skb, const struct packet *pkt, struct flow_packet *flow)
{
	void *data_end = (void *)(long)skb->data_end;
	struct sp_tuple *tuple = &flow->tuple;
	void *l4;

	__builtin_memset(flow, 0, sizeof(*flow));
	if (pkt->ip4) {
		tuple->family = 4;
		tuple->proto = pkt->ip4->protocol;
		__builtin_memcpy(tuple->saddr, &pkt->ip4->saddr, 4);
		__builtin_memcpy(tuple->daddr, &pkt->ip4->daddr, 4);
		l4 = (void *)(pkt->ip4 + 1);
	} else if (pkt->ip6) {
		tuple->family = 6;
		tuple->proto = pkt->ip6->nexthdr;
		__builtin_memcpy(tuple->saddr, &pkt->ip6->saddr, 16);
		__builtin_memcpy(tuple->daddr, &pkt->ip6->daddr, 16);
		l4 = (void *)(pkt->ip6 + 1);
	} else {
		return 0;
	}
	if (tuple->proto == IPPROTO_TCP) {
		struct tcphdr *tcp = l4;

		if ((void *)(tcp + 1) > data_end)
			return 0;
		tuple->sport = tcp->source;
		tuple->dport = tcp->dest;
		flow->tcp_flags = ((__u8 *)tcp)[13];
		flow->seq = bpf_ntohl(tcp->seq);
		flow->ack_seq = bpf_ntohl(tcp->ack_seq);
		return 1;
	}
	if (tuple->proto == IPPROTO_UDP) {
		struct udphdr *udp = l4;

		if ((void *)(udp + 1) > data_end)
			return 0;
		tuple->sport = udp->source;
		tuple->dport = udp->dest;
		return 1;
	}
	return 0;
}

static __always_inline void reverse_tuple(struct sp_tuple *out, const struct sp_tuple *tuple)
{
	__builtin_memcpy(out->saddr, tuple->daddr, 16);
	__builtin_memcpy(out->daddr, tuple->saddr, 16);
	out->sport = tuple->dport;
	out->dport = tuple->sport;
	out->proto = tuple->proto;
	out->family = tuple->family;
	out->pad[0] = 0;
	out->pad[1] = 0;
}

/* Rewrites the packet's addresses and ports from `from` to `to`, with the IPv4 header checksum
 * and the transport checksum (its pseudo-header included) fixed up incrementally. Packet pointers
 * are invalid afterwards. */
static __always_inline int rewrite_tuple(struct __sk_buff *skb, const struct sp_tuple *from, const struct sp_tuple *to)
{
	__u32 l4 = ETH_HLEN + (from->family == 4 ? sizeof(struct iphdr) : sizeof(struct ipv6hdr));
	__u32 check = l4 + (from->proto == IPPROTO_TCP ? offsetof(struct tcphdr, check) : offsetof(struct udphdr, check));
	/* An IPv4 UDP checksum of 0 means none: it stays 0. */
	__u64 udp = from->proto == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0;
	__s64 diff;

	if (from->family == 4) {
		__be32 old[2], new[2];

		__builtin_memcpy(&old[0], from->saddr, 4);
		__builtin_memcpy(&old[1], from->daddr, 4);
		__builtin_memcpy(&new[0], to->saddr, 4);
		__builtin_memcpy(&new[1], to->daddr, 4);
		diff = bpf_csum_diff(old, sizeof(old), new, sizeof(new), 0);
		if (bpf_l3_csum_replace(skb, ETH_HLEN + offsetof(struct iphdr, check), 0, diff, 0)
		    || bpf_l4_csum_replace(skb, check, 0, diff, BPF_F_PSEUDO_HDR | udp)
		    || bpf_skb_store_bytes(skb, ETH_HLEN + offsetof(struct iphdr, saddr), new, sizeof(new), 0))
			return -1;
	} else {
		__be32 old[8], new[8];

		__builtin_memcpy(old, from->saddr, 16);
		__builtin_memcpy(&old[4], from->daddr, 16);
		__builtin_memcpy(new, to->saddr, 16);
		__builtin_memcpy(&new[4], to->daddr, 16);
		diff = bpf_csum_diff(old, sizeof(old), new, sizeof(new), 0);
		if (bpf_l4_csum_replace(skb, check, 0, diff, BPF_F_PSEUDO_HDR | udp)
		    || bpf_skb_store_bytes(skb, ETH_HLEN + offsetof(struct ipv6hdr, saddr), new, sizeof(new), 0))
			return -1;
	}
	if (from->sport != to->sport
	    && (bpf_l4_csum_replace(skb, check, from->sport, to->sport, sizeof(__u16) | udp)
		|| bpf_skb_store_bytes(skb, l4, &to->sport, sizeof(__u16), 0)))
		return -1;
	if (from->dport != to->dport
	    && (bpf_l4_csum_replace(skb, check, from->dport, to->dport, sizeof(__u16) | udp)
		|| bpf_skb_store_bytes(skb, l4 + sizeof(__u16), &to->dport, sizeof(__u16), 0)))
		return -1;
	return 0;
}

static __always_inline int is_martian_source(const struct packet *pkt)
{
	if (pkt->ip4)
		return ip4_is_martian_source(pkt->ip4->saddr);
	return pkt->ip6 && ip6_is_martian_source(&pkt->ip6->saddr);
}

static __always_inline int ttl_expires(const struct packet *pkt)
{
	if (pkt->ip4)
		return pkt->ip4->ttl <= 1;
	return pkt->ip6 && pkt->ip6->hop_limit <= 1;
}

/* The entry of `tuple`, confirmed or not (SP_NAT_UNCONFIRMED tells which table holds it). */
static __always_inline struct sp_nat *find_connection(const struct sp_tuple *tuple)
{
	struct sp_nat *nat = bpf_map_lookup_elem(&sp_nat, tuple);

	return nat ? nat : bpf_map_lookup_elem(&sp_nat_new, tuple);
}

/* Whether the packet's sequence number is near enough its direction's mark to be the sender's
 * own: what a reset or a FIN must show before the table believes it. */
static __always_inline int in_window(const struct sp_nat *nat, const struct flow_packet *flow)
{
	__s32 distance = (__s32)(flow->seq - nat->seq_mark);

	return (nat->flags & SP_NAT_SEQ_SEEN) && distance >= -SP_NAT_RESET_BEHIND && distance < SP_NAT_SEQ_LEAP;
}

/* A packet of a known connection: the entry learns it was seen, whether its side closed, and
 * where its sequence is. A reset teaches it nothing, and a FIN only near the mark: either may be
 * forged, and a believed FIN lets a SYN start the tuple's next connection (a new mark). */
static __always_inline void touch(struct sp_nat *nat, const struct flow_packet *flow)
{
	__u64 now = bpf_ktime_get_ns();
	__u32 flags = nat->flags;
	__u8 tcp_flags = flow->tcp_flags;

	if (now - nat->last_seen_ns >= SP_NAT_REFRESH_NS)
		nat->last_seen_ns = now;
	if (flags & SP_NAT_REPLY_DIRECTION)
		flags |= SP_NAT_REPLIED;
	if (flow->tuple.proto == IPPROTO_TCP && !(tcp_flags & SP_TCP_RST)) {
		__u32 ahead = flow->seq - nat->seq_mark;
		/* A SYN on a closing connection starts a new one on the same tuple. */
		int restart = (tcp_flags & SP_TCP_SYN) && (flags & SP_NAT_FIN);

		if (!(flags & SP_NAT_SEQ_SEEN) || restart || (ahead >= SP_NAT_SEQ_STEP && ahead < SP_NAT_SEQ_LEAP)) {
			nat->seq_mark = flow->seq;
			flags |= SP_NAT_SEQ_SEEN;
		}
		if (restart)
			flags &= ~SP_NAT_FIN;
	}
	if ((tcp_flags & SP_TCP_FIN) && in_window(nat, flow))
		flags |= SP_NAT_FIN;
	if (flags != nat->flags)
		nat->flags = flags;
}

/* Removes both entries of the connection whose packets `from` are rewritten to `to`, from
 * whichever table holds them. */
static __always_inline void forget_connection(const struct sp_tuple *from, const struct sp_tuple *to)
{
	struct sp_tuple other;

	reverse_tuple(&other, to);
	bpf_map_delete_elem(&sp_nat, from);
	bpf_map_delete_elem(&sp_nat, &other);
	bpf_map_delete_elem(&sp_nat_new, from);
	bpf_map_delete_elem(&sp_nat_new, &other);
}

/* Whether the client's packet shows it got the backend's replies: any UDP datagram after a reply,
 * a TCP ACK (no SYN) of the SYN-ACK's sequence or a little beyond it. */
static __always_inline int client_got_replies(const struct flow_packet *flow, const struct sp_nat *reply)
{
	if (!(reply->flags & SP_NAT_REPLIED))
		return 0;
	if (flow->tuple.proto != IPPROTO_TCP)
		return 1;
	if ((flow->tcp_flags & (SP_TCP_SYN | SP_TCP_ACK | SP_TCP_RST)) != SP_TCP_ACK || !(reply->flags & SP_NAT_SEQ_SEEN))
		return 0;
	return flow->ack_seq - (reply->seq_mark + 1) < SP_NAT_ACK_AHEAD;
}

/* Moves an unconfirmed connection into sp_nat when its client's packet `flow` confirms it.
 * Returns the client's entry where it lives now. */
static __always_inline struct sp_nat *confirm_connection(const struct flow_packet *flow, struct sp_nat *nat,
							 struct packet *pkt)
{
	struct sp_tuple reply_key;
	struct sp_nat forward, reply, *confirmed, *unconfirmed_reply;

	reverse_tuple(&reply_key, &nat->to);
	unconfirmed_reply = bpf_map_lookup_elem(&sp_nat_new, &reply_key);
	if (!unconfirmed_reply || !client_got_replies(flow, unconfirmed_reply))
		return nat;
	forward = *nat;
	reply = *unconfirmed_reply;
	forward.flags &= ~SP_NAT_UNCONFIRMED;
	reply.flags &= ~SP_NAT_UNCONFIRMED;
	if (bpf_map_update_elem(&sp_nat, &reply_key, &reply, BPF_ANY))
		return nat;
	if (bpf_map_update_elem(&sp_nat, &flow->tuple, &forward, BPF_ANY)) {
		bpf_map_delete_elem(&sp_nat, &reply_key);
		return nat;
	}
	bpf_map_delete_elem(&sp_nat_new, &reply_key);
	bpf_map_delete_elem(&sp_nat_new, &flow->tuple);
	count(pkt, SP_NAT_CONFIRMED);
	confirmed = bpf_map_lookup_elem(&sp_nat, &flow->tuple);
	return confirmed ? confirmed : nat;
}

/* A TCP SYN from outside straight to a local pod: an entry left by an earlier node port connection
 * of the same client port (closing, or never confirmed, and not yet expired) would take the pod's
 * replies for its own. A live connection's entry stays: a forged SYN must not end it. */
static __always_inline void forget_stale_reply(struct __sk_buff *skb, struct packet *pkt)
{
	struct flow_packet flow;
	struct sp_tuple reply;
	struct sp_nat *stale;

	if (!read_flow(skb, pkt, &flow) || (flow.tcp_flags & (SP_TCP_SYN | SP_TCP_ACK)) != SP_TCP_SYN)
		return;
	reverse_tuple(&reply, &flow.tuple);
	stale = find_connection(&reply);
	if (stale && (stale->flags & SP_NAT_REPLY_DIRECTION) && (stale->flags & (SP_NAT_FIN | SP_NAT_UNCONFIRMED))) {
		struct sp_tuple to = stale->to;

		forget_connection(&reply, &to);
	}
}

/* Rewrites a packet of a known connection, then sends it on: into a local pod, or out of the
 * node by the FIB. */
static __always_inline int translate_flow(struct __sk_buff *skb, struct packet *pkt, const struct flow_packet *flow,
				     struct sp_nat *nat, enum sp_path path)
{
	struct sp_tuple to = nat->to;
	struct sp_endpoint *ep;

	if (ttl_expires(pkt))
		return to_stack(pkt, SP_STACK_TTL);
	if ((nat->flags & (SP_NAT_UNCONFIRMED | SP_NAT_REPLY_DIRECTION)) == SP_NAT_UNCONFIRMED)
		nat = confirm_connection(flow, nat, pkt);
	touch(nat, flow);
	/* A reset near its sender's sequence ends the connection at once: its entries go with this
	 * last packet, freeing the node's source port, and leave no reply entry that a later
	 * connection of the same client port, straight to the pod, would be mistaken for. One far
	 * from it is passed on (the endpoint judges it too) and leaves the connection be. */
	int reset = 0;

	if (flow->tcp_flags & SP_TCP_RST) {
		reset = in_window(nat, flow);
		if (!reset)
			count(pkt, SP_NAT_RESET_IGNORED);
	}
	if (rewrite_tuple(skb, &flow->tuple, &to))
		return drop(pkt, SP_DROP_MALFORMED);
	if (reset)
		forget_connection(&flow->tuple, &to);
	/* The rewrite moved the packet's pointers. */
	if (parse(skb, pkt) != SP_PARSED)
		return drop(pkt, SP_DROP_MALFORMED);
	count(pkt, path);
	ep = endpoint_at(to.family, to.daddr);
	if (ep) {
		decrease_hop_limit(pkt);
		return deliver_local(pkt, ep);
	}
	return forward_via_fib(skb, pkt);
}

/* The node's address towards the backend in `to`, as the FIB chooses it for a packet the node
 * sends there, into `out`; -1 when the FIB has no route for it. */
static __always_inline int node_address_towards(struct __sk_buff *skb, const struct sp_tuple *to, __u8 *out)
{
	struct bpf_fib_lookup fib = { .ifindex = skb->ifindex, .l4_protocol = to->proto };
	long status;

	if (to->family == 4) {
		fib.family = AF_INET;
		__builtin_memcpy(&fib.ipv4_dst, to->daddr, 4);
	} else {
		fib.family = AF_INET6;
		__builtin_memcpy(fib.ipv6_dst, to->daddr, 16);
	}
	status = bpf_fib_lookup(skb, &fib, sizeof(fib), SP_FIB_LOOKUP_SRC | SP_FIB_LOOKUP_SKIP_NEIGH);
	if (status != BPF_FIB_LKUP_RET_SUCCESS)
		return -1;
	if (to->family == 4)
		__builtin_memcpy(out, &fib.ipv4_src, 4);
	else
		__builtin_memcpy(out, fib.ipv6_src, 16);
	return 0;
}

/* Opens a connection to `backend` for the packet `flow`: the reply entry first (for a backend on
 * another node, with the first free source port it takes), then the entry for the client's side.
 * Returns that entry, or 0 with the reason in `why`. */
static __always_inline struct sp_nat *open_connection(struct __sk_buff *skb, const struct flow_packet *flow,
						      const struct sp_backend *backend, int *why)
{
	const struct sp_tuple *client = &flow->tuple;
	struct sp_nat forward = { .last_seen_ns = bpf_ktime_get_ns(), .flags = SP_NAT_UNCONFIRMED };
	struct sp_nat reply = { .last_seen_ns = forward.last_seen_ns, .flags = SP_NAT_REPLY_DIRECTION | SP_NAT_UNCONFIRMED };
	struct sp_tuple reply_key;
	struct sp_nat *opened;

	forward.to = *client;
	__builtin_memcpy(forward.to.daddr, backend->addr, 16);
	forward.to.dport = backend->port;
	reverse_tuple(&reply.to, client);

	/* Whether this run made the reply entry: only then is it this run's to take back. */
	int made_reply = 1;

	if (endpoint_at(backend->family, backend->addr)) {
		reverse_tuple(&reply_key, &forward.to);
		made_reply = !bpf_map_update_elem(&sp_nat_new, &reply_key, &reply, BPF_NOEXIST);
	} else {
		int attempt;

		forward.flags |= SP_NAT_SNAT;
		__builtin_memset(forward.to.saddr, 0, 16);
		if (node_address_towards(skb, &forward.to, forward.to.saddr)) {
			*why = SP_STACK_FIB_OTHER;
			return 0;
		}
		for (attempt = 0; attempt < SP_SNAT_PORT_ATTEMPTS; attempt++) {
			forward.to.sport = bpf_htons(SP_SNAT_PORT_MIN + bpf_get_prandom_u32() % SP_SNAT_PORT_COUNT);
			reverse_tuple(&reply_key, &forward.to);
			if (!bpf_map_lookup_elem(&sp_nat, &reply_key)
			    && !bpf_map_update_elem(&sp_nat_new, &reply_key, &reply, BPF_NOEXIST))
				break;
		}
		if (attempt == SP_SNAT_PORT_ATTEMPTS) {
			*why = SP_DROP_NO_SNAT_PORT;
			return 0;
		}
	}
	/* Another CPU may have opened the same connection from a retransmitted SYN: its entries win. */
	if (bpf_map_update_elem(&sp_nat_new, client, &forward, BPF_NOEXIST) && made_reply)
		bpf_map_delete_elem(&sp_nat_new, &reply_key);
	opened = bpf_map_lookup_elem(&sp_nat_new, client);
	if (!opened)
		*why = SP_DROP_NO_SNAT_PORT;
	return opened;
}

/* At an uplink, for a packet that is not for a local pod: a connection to a service answered
 * from outside, or a reply from a backend on another node, is translated; anything else goes on
 * to the stack untouched and uncounted (the node's own traffic). */
static __always_inline int from_outside(struct __sk_buff *skb)
{
	struct packet pkt;
	struct flow_packet flow;
	struct sp_nat *nat;

	if (parse_routable(skb, &pkt) != SP_PARSED || !read_flow(skb, &pkt, &flow))
		return TC_ACT_UNSPEC;
	nat = find_connection(&flow.tuple);
	if (nat)
		return translate_flow(skb, &pkt, &flow, nat,
				 (nat->flags & SP_NAT_REPLY_DIRECTION) ? SP_NAT_REPLY : SP_NAT_TO_BACKEND);

	struct sp_service_key key = { .port = flow.tuple.dport, .proto = flow.tuple.proto, .family = flow.tuple.family };
	struct sp_service *service;
	struct sp_backend backend;
	int why = 0;

	__builtin_memcpy(key.addr, flow.tuple.daddr, 16);
	service = bpf_map_lookup_elem(&sp_services, &key);
	if (!service || !(service->flags & SP_SERVICE_EXTERNAL))
		return TC_ACT_UNSPEC;
	if (is_martian_source(&pkt))
		return drop(&pkt, SP_DROP_MARTIAN_SOURCE);
	if (!source_allowed(&key, flow.tuple.saddr))
		return drop(&pkt, SP_DROP_SOURCE_RANGE);
	/* A TCP packet of no connection the table knows: the stack answers it with a reset. */
	if (flow.tuple.proto == IPPROTO_TCP && (flow.tcp_flags & (SP_TCP_SYN | SP_TCP_ACK | SP_TCP_RST | SP_TCP_FIN)) != SP_TCP_SYN)
		return to_stack(&pkt, SP_STACK_NO_FLOW);
	if (ttl_expires(&pkt))
		return to_stack(&pkt, SP_STACK_TTL);
	if (pick_external_backend(&key, &backend)) {
		if (service->flags & SP_SERVICE_EXTERNAL_LOCAL)
			return drop(&pkt, SP_DROP_NO_LOCAL_BACKEND);
		return to_stack(&pkt, SP_STACK_NO_BACKEND);
	}
	nat = open_connection(skb, &flow, &backend, &why);
	if (!nat)
		return conclude(&pkt, why);
	return translate_flow(skb, &pkt, &flow, nat, SP_NAT_TO_BACKEND);
}

/* At a pod's veth: a reply of a connection from outside is translated back to the service and
 * sent out of the node, with the program's verdict in `verdict`. Returns 0 for any other packet,
 * which the caller decides on (its pointers still valid: nothing was rewritten). */
static __always_inline int reply_to_outside(struct __sk_buff *skb, struct packet *pkt, int *verdict)
{
	struct flow_packet flow;
	struct sp_nat *nat;

	if (!read_flow(skb, pkt, &flow))
		return 0;
	nat = find_connection(&flow.tuple);
	if (!nat || !(nat->flags & SP_NAT_REPLY_DIRECTION))
		return 0;
	*verdict = translate_flow(skb, pkt, &flow, nat, SP_NAT_REPLY);
	return 1;
}
