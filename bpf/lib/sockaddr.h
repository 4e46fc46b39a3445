/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Reading and writing the address of a cgroup socket hook's context as the LB's keys. IPv4-mapped
 * IPv6 addresses (::ffff:a.b.c.d) are IPv4 services and backends seen through an IPv6 socket. */
#pragma once
#include "lb.h"

static __always_inline void key_v4(struct sp_service_key *key, __u32 addr, __u32 port, __u32 proto)
{
	__builtin_memset(key, 0, sizeof(*key));
	__builtin_memcpy(key->addr, &addr, 4);
	key->port = (__u16)port;
	key->proto = proto;
	key->family = 4;
}

static __always_inline int is_v4_mapped(const __u32 *addr)
{
	return addr[0] == 0 && addr[1] == 0 && addr[2] == bpf_htonl(0xffff);
}

/* The key of what an IPv6 socket's context names: an IPv6 service, or an IPv4 one if mapped. */
static __always_inline void key_v6(struct sp_service_key *key, const __u32 *addr, __u32 port, __u32 proto)
{
	if (is_v4_mapped(addr)) {
		key_v4(key, addr[3], port, proto);
		return;
	}
	__builtin_memset(key, 0, sizeof(*key));
	__builtin_memcpy(key->addr, addr, 16);
	key->port = (__u16)port;
	key->proto = proto;
	key->family = 6;
}

static __always_inline void backend_v4(struct sp_backend *backend, __u32 addr, __u32 port)
{
	__builtin_memset(backend, 0, sizeof(*backend));
	__builtin_memcpy(backend->addr, &addr, 4);
	backend->port = (__u16)port;
	backend->family = 4;
}

static __always_inline void backend_v6(struct sp_backend *backend, const __u32 *addr, __u32 port)
{
	if (is_v4_mapped(addr)) {
		backend_v4(backend, addr[3], port);
		return;
	}
	__builtin_memset(backend, 0, sizeof(*backend));
	__builtin_memcpy(backend->addr, addr, 16);
	backend->port = (__u16)port;
	backend->family = 6;
}

/* Writes `backend` into an IPv6 socket's context; an IPv4 backend only where the socket spoke
 * IPv4-mapped to begin with. Returns -1 when the families do not fit. */
static __always_inline int write_v6(struct bpf_sock_addr *ctx, const struct sp_backend *backend, int mapped)
{
	__u32 addr[4];

	if (backend->family == 4) {
		if (!mapped)
			return -1;
		addr[0] = 0;
		addr[1] = 0;
		addr[2] = bpf_htonl(0xffff);
		__builtin_memcpy(&addr[3], backend->addr, 4);
	} else {
		if (mapped)
			return -1;
		__builtin_memcpy(addr, backend->addr, 16);
	}
	ctx->user_ip6[0] = addr[0];
	ctx->user_ip6[1] = addr[1];
	ctx->user_ip6[2] = addr[2];
	ctx->user_ip6[3] = addr[3];
	ctx->user_port = backend->port;
	return 0;
}

static __always_inline void write_service_v6(struct bpf_sock_addr *ctx, const struct sp_service_key *service)
{
	struct sp_backend as_address = { .port = service->port, .family = service->family };

	__builtin_memcpy(as_address.addr, service->addr, 16);
	write_v6(ctx, &as_address, service->family == 4);
}
