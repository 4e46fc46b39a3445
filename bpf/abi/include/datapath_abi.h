/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The layout of the datapath's pinned maps: shared by the BPF programs (bpf/lib) and the Swift
 * loader (module CDatapathABI), so both sides read the same bytes. Change what a layout's bytes
 * mean and bump SP_LAYOUT_VERSION: the loader then makes every map anew and refills the endpoint
 * and service maps from the store's records, even where the sizes stayed the same. */
#pragma once
#include <linux/types.h>

#define SP_LAYOUT_VERSION 3

/* Value of the endpoint maps, keyed by a pod address. */
struct sp_endpoint {
	__u32 ifindex;		/* the host end of the pod's veth */
	__u8 pod_mac[6];
	__u8 host_mac[6];
};

struct sp_addr6 {
	__u8 addr[16];
};

/* Keys of the LPM tries that list the destinations never masqueraded. */
struct sp_lpm4 {
	__u32 prefixlen;
	__u32 addr;		/* network order */
};

struct sp_lpm6 {
	__u32 prefixlen;
	__u8 addr[16];
};

#define SP_NODE_MASQUERADE (1u << 0)

struct sp_node_config {
	__u32 flags;
	__u32 reserved;
};

enum sp_attach_mode {
	SP_ATTACH_TCX = 1,	/* a bpf_link on the device's tcx hook, pinned in the store */
	SP_ATTACH_TC = 2,	/* the legacy fallback: clsact + cls_bpf in direct-action mode */
};

/* The cls_bpf filter swiftpath owns in tc mode: one fixed handle and priority, so it can be found
 * and removed again without touching anyone else's filters. */
#define SP_TC_HANDLE 0x5350
#define SP_TC_PRIORITY 0x5350

struct sp_meta {
	__u64 object_hash;	/* FNV-1a of the loaded ELF object */
	__u32 layout_version;	/* SP_LAYOUT_VERSION of the loader that wrote it */
	__u32 release;		/* the swiftpath release that loaded it: major << 16 | minor << 8 | patch */
};

/* What happened to a packet: the path it took, why it went to the stack, or why it was dropped. */
enum sp_path {
	SP_REDIRECT_PEER = 1,	/* into a local pod, netns ingress to ingress */
	SP_REDIRECT_FIB,		/* out of the node, neighbour known */
	SP_REDIRECT_NEIGH,		/* out of the node, neighbour resolved by the kernel */
	SP_STACK_NOT_IP,		/* ARP (a pod's own, from a pod), LLDP, ...: the stack's business */
	SP_STACK_ICMP6_ND,		/* neighbour discovery */
	SP_STACK_NOT_FORWARDED,		/* the FIB does not forward it: for the node itself, or no route */
	SP_STACK_MASQUERADE,		/* leaves the cluster: the stack SNATs it */
	SP_STACK_TTL,			/* TTL/hop limit would expire: the stack sends the ICMP error */
	SP_STACK_IP_OPTIONS,
	SP_STACK_FRAGMENT,
	SP_STACK_IPV6_EXTENSION,
	SP_STACK_FIB_OTHER,		/* no route, blackhole, unreachable, MTU, forwarding off, ... */
	SP_STACK_NOT_ENDPOINT,		/* uplink: not for a local pod */
	SP_DROP_SPOOFED_SOURCE,
	SP_DROP_SPOOFED_MAC,
	SP_DROP_MALFORMED,		/* truncated or inconsistent headers, a bad IPv4 header checksum */
	SP_STACK_NOT_UNICAST,		/* to a broadcast, multicast, link-local or otherwise special address */
	SP_DROP_OTHER_HOST,		/* an Ethernet frame addressed to another host */
	SP_DROP_MARTIAN_SOURCE,		/* from outside, with a source no sender has (loopback, multicast, ...) or a local pod's own */
	/* Translations, counted besides the path the packet then takes (redirect_peer, redirect_fib, ...). */
	SP_NAT_TO_BACKEND,		/* uplink: a service's connection from outside, translated to its backend */
	SP_NAT_REPLY,			/* a reply of such a connection, translated back to the service */
	SP_STACK_NO_FLOW,		/* uplink: TCP for a service, neither a SYN nor of a known connection */
	SP_STACK_NO_BACKEND,		/* uplink: a service without endpoints: the node refuses it */
	SP_DROP_NO_LOCAL_BACKEND,	/* uplink: externalTrafficPolicy Local, and no endpoint on this node */
	SP_DROP_NO_SNAT_PORT,		/* uplink: no free source port to reach a backend on another node */
	SP_DROP_NOT_IP,			/* from a pod: neither IP nor ARP (VLAN tags, LLDP, anything else) */
	SP_DROP_ROUTER_MESSAGE,		/* from a pod: a router advertisement or an ICMP redirect */
	SP_DROP_EXTENSION_CHAIN,	/* from a pod: more IPv6 extension headers than the datapath reads */
	SP_NAT_CONFIRMED,		/* a connection from outside whose client showed it gets the replies */
	SP_NAT_RESET_IGNORED,		/* a TCP reset far from its direction's sequence: the connection stays */
	SP_DROP_SOURCE_RANGE,		/* uplink: a new connection to a frontend whose source ranges do not hold its source */
	SP_PATH_MAX,
};

/* Every struct below spells out its padding: keys are compared byte by byte, and the Swift side
 * copies them as bytes, which only works where no byte is left to the compiler. */

/* Socket load balancing. A service is a VIP, port and protocol; its backends sit in numbered slots
 * under the service's current id (a backend of weight w takes w slots). Replacing a service writes
 * the slots under a fresh id, then swaps the service entry: a connect sees all the old set or all
 * the new one. */
#define SP_LB_SKIP_HOST_NETNS (1u << 0)
/* A service on a loopback address: localhost is the node only in the node's own netns (in a pod
 * it is the pod), so only the node's sockets are translated. */
#define SP_SERVICE_NODE_NETNS_ONLY (1u << 0)
/* Answered at the uplinks too, for clients outside the node: a node port, an external IP, a
 * LoadBalancer's ingress IP. */
#define SP_SERVICE_EXTERNAL (1u << 1)
/* From outside, this node's backends only (externalTrafficPolicy Local): they have their own slots,
 * after the service's others. */
#define SP_SERVICE_EXTERNAL_LOCAL (1u << 2)

/* How the socket hooks behave node-wide. */
struct sp_lb_config {
	__u64 host_netns_cookie;	/* the node's own netns, for SP_LB_SKIP_HOST_NETNS */
	__u32 flags;
	__u32 reserved;
};

struct sp_service_key {
	__u8 addr[16];		/* IPv4 in the first four bytes */
	__u16 port;		/* network order */
	__u8 proto;		/* IPPROTO_TCP or IPPROTO_UDP */
	__u8 family;		/* 4 or 6 */
};

struct sp_service {
	__u32 id;
	__u32 slots;		/* 0: no live backend, connect and sendmsg fail with ECONNREFUSED */
	__u32 flags;		/* SP_SERVICE_* */
	__u32 affinity_seconds;	/* per-client affinity: a client (netns) keeps its backend this long; 0: none */
	__u32 external_slots;	/* SP_SERVICE_EXTERNAL_LOCAL: the slots from `slots` on; 0: none, packets dropped */
	__u32 reserved;
};

struct sp_slot_key {
	__u32 id;
	__u32 slot;
};

struct sp_backend {
	__u8 addr[16];
	__u16 port;		/* network order */
	__u8 family;
	__u8 reserved;
};

/* What a socket was translated to, so that replies and getpeername() show the service again, and
 * so that the sockets of a backend that went away can be found and terminated. */
struct sp_translation_key {
	__u64 cookie;		/* bpf_get_socket_cookie() */
	struct sp_backend backend;
	__u8 pad[4];
};

struct sp_translation {
	struct sp_service_key service;
};

struct sp_sticky_key {
	__u64 cookie;
	struct sp_service_key service;
	__u8 pad[4];
};

/* Per-client affinity: the backend a client (its netns) last got for a service, and when. */
struct sp_affinity_key {
	__u64 netns_cookie;
	struct sp_service_key service;
	__u8 pad[4];
};

struct sp_affinity {
	struct sp_backend backend;
	__u8 pad[4];
	__u64 last_used_ns;
};

/* loadBalancerSourceRanges: which sources outside the node may open connections to a service
 * frontend. A frontend with ranges has one entry covering every source (SP_SOURCE_DENIED) and one
 * per range (SP_SOURCE_ALLOWED), so the longest match decides in one lookup; a frontend with no
 * entry is open to every source. */
struct sp_source_range_key {
	__u32 prefixlen;		/* SP_SOURCE_RANGE_FRONTEND_BITS + the range's prefix length */
	struct sp_service_key frontend;
	__u8 addr[16];			/* the range's first address; IPv4 in the first four bytes */
};

#define SP_SOURCE_RANGE_FRONTEND_BITS (8 * sizeof(struct sp_service_key))
#define SP_SOURCE_DENIED 0
#define SP_SOURCE_ALLOWED 1

/* A backend that left a service: its translated sockets are to be terminated. */
struct sp_departure {
	struct sp_service_key service;
	struct sp_backend backend;
};

/* North-south translation: a connection from outside to a service the node answers at its uplinks
 * has two entries, one per direction, keyed by the packet's addresses and ports as they arrive,
 * each saying what they are rewritten to. IPv4 addresses take the first four bytes. */
struct sp_tuple {
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport;		/* network order */
	__u16 dport;
	__u8 proto;
	__u8 family;		/* 4 or 6 */
	__u8 pad[2];
};

#define SP_NAT_REPLY_DIRECTION (1u << 0)	/* from the backend, back to the client */
#define SP_NAT_SNAT (1u << 1)		/* the backend is on another node: the source is the node's */
#define SP_NAT_FIN (1u << 2)		/* this direction sent a TCP FIN */
#define SP_NAT_REPLIED (1u << 3)	/* reply direction: the backend answered */
#define SP_NAT_SEQ_SEEN (1u << 4)	/* seq_mark holds a sequence number of this direction */
#define SP_NAT_UNCONFIRMED (1u << 5)	/* in sp_nat_new: the client has not shown it gets the replies */

struct sp_nat {
	struct sp_tuple to;
	__u64 last_seen_ns;	/* bpf_ktime_get_ns() (CLOCK_MONOTONIC), refreshed at most once a second */
	__u32 flags;		/* SP_NAT_* */
	__u32 seq_mark;		/* TCP: a recent sequence number of this direction (host order), for resets */
};

struct sp_counter_key {
	__u32 ifindex;
	__u32 path;		/* enum sp_path */
};

struct sp_counter {
	__u64 packets;
	__u64 bytes;
};
