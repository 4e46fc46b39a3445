/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Socket load balancing in cgroup hooks: a service address becomes a backend once per connection
 * (connect, unconnected sendmsg), replies and getpeername() show the service again, and a closing
 * socket's translation is forgotten. */
#include "lb.h"
#include "sockaddr.h"

/* Refuses a connect or sendmsg to a service with no live backend, with ECONNREFUSED. */
static __always_inline int refuse(void)
{
	bpf_set_retval(-ECONNREFUSED);
	return 0;
}

/* Translates `key` for a socket: a sticky backend for unconnected UDP, else a fresh pick. Returns
 * -1 when `key` is no service, -2 when it has no backend. */
static __always_inline int translate(struct bpf_sock_addr *ctx, const struct sp_service_key *key, int sticky,
				     struct sp_backend *backend)
{
	struct sp_service *service = bpf_map_lookup_elem(&sp_services, key);
	__u64 netns = bpf_get_netns_cookie(ctx);

	if (!service || skip_netns(netns, service))
		return -1;
	__u64 cookie = bpf_get_socket_cookie(ctx);
	__u32 affinity_seconds = service->affinity_seconds;

	if (affinity_seconds && service->slots) {
		/* The client keeps its backend while it comes back within the timeout. */
		struct sp_affinity_key client = { .netns_cookie = netns, .service = *key };
		struct sp_affinity *kept = bpf_map_lookup_elem(&sp_affinity, &client);
		__u64 now = bpf_ktime_get_ns();

		if (kept && now - kept->last_used_ns < (__u64)affinity_seconds * 1000000000ull) {
			kept->last_used_ns = now;
			*backend = kept->backend;
		} else {
			if (pick_backend(key, backend))
				return -2;
			struct sp_affinity fresh = { .backend = *backend, .last_used_ns = now };

			bpf_map_update_elem(&sp_affinity, &client, &fresh, BPF_ANY);
		}
	} else if (sticky) {
		struct sp_sticky_key stick = { .cookie = cookie, .service = *key };
		struct sp_backend *kept = bpf_map_lookup_elem(&sp_sticky, &stick);

		if (kept) {
			*backend = *kept;
			return 0;
		}
		if (pick_backend(key, backend))
			return -2;
		bpf_map_update_elem(&sp_sticky, &stick, backend, BPF_ANY);
	} else if (pick_backend(key, backend)) {
		return -2;
	}
	remember(cookie, key, backend);
	return 0;
}

static __always_inline int balance4(struct bpf_sock_addr *ctx, int sticky)
{
	struct sp_service_key key;
	struct sp_backend backend;

	key_v4(&key, ctx->user_ip4, ctx->user_port, ctx->protocol);
	int result = translate(ctx, &key, sticky, &backend);

	if (result == -1)
		return 1;
	if (result == -2 || backend.family != 4)
		return refuse();
	__builtin_memcpy(&ctx->user_ip4, backend.addr, 4);
	ctx->user_port = backend.port;
	return 1;
}

static __always_inline int balance6(struct bpf_sock_addr *ctx, int sticky)
{
	struct sp_service_key key;
	struct sp_backend backend;
	__u32 addr[4] = { ctx->user_ip6[0], ctx->user_ip6[1], ctx->user_ip6[2], ctx->user_ip6[3] };

	key_v6(&key, addr, ctx->user_port, ctx->protocol);
	int result = translate(ctx, &key, sticky, &backend);

	if (result == -1)
		return 1;
	if (result == -2 || write_v6(ctx, &backend, key.family == 4))
		return refuse();
	return 1;
}

SEC("cgroup/connect4")
int sock_connect4(struct bpf_sock_addr *ctx) { return balance4(ctx, 0); }

SEC("cgroup/connect6")
int sock_connect6(struct bpf_sock_addr *ctx) { return balance6(ctx, 0); }

SEC("cgroup/sendmsg4")
int sock_sendmsg4(struct bpf_sock_addr *ctx) { return balance4(ctx, 1); }

SEC("cgroup/sendmsg6")
int sock_sendmsg6(struct bpf_sock_addr *ctx) { return balance6(ctx, 1); }

/* Replies and peers: a translated socket sees the service, never the backend. These hooks must
 * return 1. */
static __always_inline int show_service4(struct bpf_sock_addr *ctx)
{
	struct sp_backend peer;

	backend_v4(&peer, ctx->user_ip4, ctx->user_port);
	struct sp_translation *translation = translated(bpf_get_socket_cookie(ctx), &peer);

	if (translation && translation->service.family == 4) {
		__builtin_memcpy(&ctx->user_ip4, translation->service.addr, 4);
		ctx->user_port = translation->service.port;
	}
	return 1;
}

static __always_inline int show_service6(struct bpf_sock_addr *ctx)
{
	struct sp_backend peer;
	__u32 addr[4] = { ctx->user_ip6[0], ctx->user_ip6[1], ctx->user_ip6[2], ctx->user_ip6[3] };

	backend_v6(&peer, addr, ctx->user_port);
	struct sp_translation *translation = translated(bpf_get_socket_cookie(ctx), &peer);

	if (translation)
		write_service_v6(ctx, &translation->service);
	return 1;
}

SEC("cgroup/recvmsg4")
int sock_recvmsg4(struct bpf_sock_addr *ctx) { return show_service4(ctx); }

SEC("cgroup/recvmsg6")
int sock_recvmsg6(struct bpf_sock_addr *ctx) { return show_service6(ctx); }

SEC("cgroup/getpeername4")
int sock_getpeername4(struct bpf_sock_addr *ctx) { return show_service4(ctx); }

SEC("cgroup/getpeername6")
int sock_getpeername6(struct bpf_sock_addr *ctx) { return show_service6(ctx); }

/* A socket closes: forget what its connect translated. Its peer is the backend it was connected
 * to; unconnected sockets have none, their datagram entries age out of the LRU. */
SEC("cgroup/sock_release")
int sock_release(struct bpf_sock *sk)
{
	struct sp_backend peer;

	if (!sk->dst_port)
		return 1;
	if (sk->family == AF_INET) {
		backend_v4(&peer, sk->dst_ip4, sk->dst_port);
	} else if (sk->family == AF_INET6) {
		__u32 addr[4] = { sk->dst_ip6[0], sk->dst_ip6[1], sk->dst_ip6[2], sk->dst_ip6[3] };

		backend_v6(&peer, addr, sk->dst_port);
	} else {
		return 1;
	}
	forget(bpf_get_socket_cookie(sk), &peer);
	return 1;
}
