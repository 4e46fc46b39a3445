/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Terminating the sockets of backends that left their service: socket
 * iterators walk every TCP and UDP socket of the reader's netns, and bpf_sock_destroy() aborts
 * those the LB translated to a departed backend. The application's next operation fails
 * (ECONNABORTED) and it reconnects, to a live backend. */
#pragma once
#include "lb.h"

/* Just the kernel fields the iterators read; CO-RE finds them in the running kernel's BTF. */
struct sock_common {
	unsigned short skc_family;
	volatile unsigned char skc_state;
	__be32 skc_daddr;
	__be16 skc_dport;
	struct in6_addr skc_v6_daddr;
} __attribute__((preserve_access_index));

struct sock {
	struct sock_common __sk_common;
	__u16 sk_protocol;
} __attribute__((preserve_access_index));

struct inet_sock {
	struct sock sk;
} __attribute__((preserve_access_index));

struct udp_sock {
	struct inet_sock inet;
} __attribute__((preserve_access_index));

struct bpf_iter_meta {
	void *seq;
} __attribute__((preserve_access_index));

struct bpf_iter__tcp {
	struct bpf_iter_meta *meta;
	struct sock_common *sk_common;
} __attribute__((preserve_access_index));

struct bpf_iter__udp {
	struct bpf_iter_meta *meta;
	struct udp_sock *udp_sk;
} __attribute__((preserve_access_index));

extern int bpf_sock_destroy(struct sock_common *sk) __ksym;

#define SP_TCP_TIME_WAIT 6
#define SP_TCP_NEW_SYN_RECV 12

/* The backends that left, set by the loader for one sweep. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct sp_departure);
	__type(value, __u8);
	__uint(max_entries, 4096);
} sp_departures SEC(".maps") __weak;

/* How many sockets the sweeps terminated. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 1);
} sp_terminated SEC(".maps") __weak;

/* Aborts `sk` if the LB translated it to a backend that left that service. */
static __always_inline void terminate_if_departed(struct sock_common *sk, __u8 proto)
{
	struct sp_backend peer = {};
	unsigned short family = sk->skc_family;

	if (family == AF_INET) {
		__be32 daddr = sk->skc_daddr;

		__builtin_memcpy(peer.addr, &daddr, 4);
		peer.family = 4;
	} else if (family == AF_INET6) {
		struct in6_addr daddr = sk->skc_v6_daddr;

		if (daddr.in6_u.u6_addr32[0] == 0 && daddr.in6_u.u6_addr32[1] == 0 && daddr.in6_u.u6_addr32[2] == bpf_htonl(0xffff)) {
			__builtin_memcpy(peer.addr, &daddr.in6_u.u6_addr32[3], 4);
			peer.family = 4;
		} else {
			__builtin_memcpy(peer.addr, &daddr, 16);
			peer.family = 6;
		}
	} else {
		return;
	}
	peer.port = sk->skc_dport;
	if (!peer.port)
		return;		/* listeners and unconnected UDP sockets have no peer */

	struct sp_translation *translation = translated(bpf_get_socket_cookie(sk), &peer);

	if (!translation || translation->service.proto != proto)
		return;
	struct sp_departure departure = { .service = translation->service, .backend = peer };

	if (!bpf_map_lookup_elem(&sp_departures, &departure))
		return;
	if (bpf_sock_destroy(sk) == 0) {
		__u32 zero = 0;
		__u64 *terminated = bpf_map_lookup_elem(&sp_terminated, &zero);

		if (terminated)
			__sync_fetch_and_add(terminated, 1);
	}
}
