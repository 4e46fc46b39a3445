/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The datapath's maps, declared once. The loader pins them in the store and reuses them across
 * program builds, so pods keep their entries when the programs are replaced. */
#pragma once
#include "common.h"

#define SP_MAX_ENDPOINTS 16384

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);			/* IPv4 address, network order */
	__type(value, struct sp_endpoint);
	__uint(max_entries, SP_MAX_ENDPOINTS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} sp_endpoints4 SEC(".maps") __weak;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct sp_addr6);
	__type(value, struct sp_endpoint);
	__uint(max_entries, SP_MAX_ENDPOINTS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} sp_endpoints6 SEC(".maps") __weak;

/* The same entries by the host end's device: who may send from a link-local or unspecified IPv6
 * address, which no endpoint map holds. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);			/* ifindex of the host end */
	__type(value, struct sp_endpoint);
	__uint(max_entries, SP_MAX_ENDPOINTS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} sp_pod_devices SEC(".maps") __weak;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct sp_node_config);
	__uint(max_entries, 1);
} sp_node SEC(".maps") __weak;

/* Destinations inside the cluster: never masqueraded. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct sp_lpm4);
	__type(value, __u8);
	__uint(max_entries, 64);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} sp_cluster4 SEC(".maps") __weak;

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct sp_lpm6);
	__type(value, __u8);
	__uint(max_entries, 64);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} sp_cluster6 SEC(".maps") __weak;

/* The cluster's nodes' addresses, written by the agent: never masqueraded either. A backend's
 * reply to a connection another node translated (nat.h) is addressed to that node, and must reach
 * it from the pod's own address to be translated back. */
#define SP_MAX_NODE_ADDRESSES 16384

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);			/* IPv4 address, network order */
	__type(value, __u8);
	__uint(max_entries, SP_MAX_NODE_ADDRESSES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} sp_nodes4 SEC(".maps") __weak;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct sp_addr6);
	__type(value, __u8);
	__uint(max_entries, SP_MAX_NODE_ADDRESSES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} sp_nodes6 SEC(".maps") __weak;

/* This node's own addresses, written by the agent (and `datapath load`): no packet from outside
 * carries one as its source. */
#define SP_MAX_LOCAL_ADDRESSES 1024

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);			/* IPv4 address, network order */
	__type(value, __u8);
	__uint(max_entries, SP_MAX_LOCAL_ADDRESSES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} sp_local4 SEC(".maps") __weak;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct sp_addr6);
	__type(value, __u8);
	__uint(max_entries, SP_MAX_LOCAL_ADDRESSES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} sp_local6 SEC(".maps") __weak;

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__type(key, struct sp_counter_key);
	__type(value, struct sp_counter);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} sp_counters SEC(".maps") __weak;

/* Which build of this object the store runs, so that a newer binary knows to upgrade it. Written
 * by the loader, never read by the programs. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct sp_meta);
	__uint(max_entries, 1);
} sp_meta SEC(".maps") __weak;

/* The uplinks the loader attached uplink_ingress to, and how (enum sp_attach_mode): what
 * `datapath status` shows and `datapath unload` detaches. Never read by the programs. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);		/* ifindex */
	__type(value, __u32);
	__uint(max_entries, 256);
} sp_uplinks SEC(".maps") __weak;
