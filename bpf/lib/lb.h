/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Socket load balancing: a service VIP becomes one of its backends once per connection (TCP
 * connect, UDP connect or unconnected sendmsg), in cgroup socket hooks, and replies and
 * getpeername() show the VIP again. */
#pragma once
#include "common.h"

#ifndef SP_MAX_SERVICES
#define SP_MAX_SERVICES 65536
#endif
#define SP_MAX_SLOTS (SP_MAX_SERVICES * 4)

#include <asm-generic/errno.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct sp_service_key);
	__type(value, struct sp_service);
	__uint(max_entries, SP_MAX_SERVICES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} sp_services SEC(".maps") __weak;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct sp_slot_key);
	__type(value, struct sp_backend);
	__uint(max_entries, SP_MAX_SLOTS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} sp_slots SEC(".maps") __weak;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct sp_lb_config);
	__uint(max_entries, 1);
} sp_lb SEC(".maps") __weak;

/* Whether `service` is not for a socket of this netns: a loopback one everywhere but in the node's
 * own netns, where the others are left alone when the config says so. */
static __always_inline int skip_netns(__u64 netns_cookie, const struct sp_service *service)
{
	__u32 zero = 0;
	struct sp_lb_config *config = bpf_map_lookup_elem(&sp_lb, &zero);
	int node_only = (service->flags & SP_SERVICE_NODE_NETNS_ONLY) != 0;

	if (!config)
		return node_only;
	if (config->host_netns_cookie != netns_cookie)
		return node_only;
	return !node_only && (config->flags & SP_LB_SKIP_HOST_NETNS);
}

/* Socket and backend -> service, for every socket the hooks translated; a connected socket's entry
 * goes when it closes (sock_release). LRU maps are allocated up front, so their sizes are the
 * node's memory: past 65,536 live translated sockets (or unconnected UDP destinations, which no
 * close can name) the oldest entries go (their replies then show the backend, and a sweep no
 * longer finds them). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct sp_translation_key);
	__type(value, struct sp_translation);
	__uint(max_entries, 65536);
} sp_translations SEC(".maps") __weak;

/* Unconnected UDP sockets keep their backend: socket and service -> backend. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct sp_sticky_key);
	__type(value, struct sp_backend);
	__uint(max_entries, 16384);
} sp_sticky SEC(".maps") __weak;

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct sp_affinity_key);
	__type(value, struct sp_affinity);
	__uint(max_entries, 16384);
} sp_affinity SEC(".maps") __weak;

/* Picks a backend of `service` at random, from its slots for clients outside the node when
 * `external` says so; a replaced service's old slots may vanish under a concurrent connect, so a
 * miss looks the service up once more. */
static __always_inline int pick_from(const struct sp_service_key *key, int external, struct sp_backend *out)
{
	for (int attempt = 0; attempt < 2; attempt++) {
		struct sp_service *service = bpf_map_lookup_elem(&sp_services, key);
		__u32 first = 0, count;

		if (!service)
			return -1;
		count = service->slots;
		if (external && (service->flags & SP_SERVICE_EXTERNAL_LOCAL)) {
			first = service->slots;
			count = service->external_slots;
		}
		if (!count)
			return -1;
		struct sp_slot_key slot = { .id = service->id, .slot = first + bpf_get_prandom_u32() % count };
		struct sp_backend *backend = bpf_map_lookup_elem(&sp_slots, &slot);

		if (backend) {
			*out = *backend;
			return 0;
		}
	}
	return -1;
}

static __always_inline int pick_backend(const struct sp_service_key *key, struct sp_backend *out)
{
	return pick_from(key, 0, out);
}

static __always_inline int pick_external_backend(const struct sp_service_key *key, struct sp_backend *out)
{
	return pick_from(key, 1, out);
}

static __always_inline void remember(__u64 cookie, const struct sp_service_key *service, const struct sp_backend *backend)
{
	struct sp_translation_key key = { .cookie = cookie, .backend = *backend };
	struct sp_translation value = { .service = *service };

	bpf_map_update_elem(&sp_translations, &key, &value, BPF_ANY);
}

/* A translated socket is closing: its entry goes with it, so the map holds the node's live
 * sockets rather than its history (a churn of short connections would otherwise evict the entries
 * of long-lived ones, which then show the backend and escape a termination sweep). */
static __always_inline void forget(__u64 cookie, const struct sp_backend *peer)
{
	struct sp_translation_key key = { .cookie = cookie, .backend = *peer };

	bpf_map_delete_elem(&sp_translations, &key);
}

/* The service a socket's peer stands for, if the hooks translated it. */
static __always_inline struct sp_translation *translated(__u64 cookie, const struct sp_backend *peer)
{
	struct sp_translation_key key = { .cookie = cookie, .backend = *peer };

	return bpf_map_lookup_elem(&sp_translations, &key);
}
