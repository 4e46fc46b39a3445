/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Somebody else's tc program, for the coexistence test: counts what it sees at a device's tcx
 * ingress and lets every packet go on to the next program. */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 1);
} other_seen SEC(".maps");

SEC("tc")
int other_tool(struct __sk_buff *skb)
{
	__u32 zero = 0;
	__u64 *seen = bpf_map_lookup_elem(&other_seen, &zero);

	if (seen)
		__sync_fetch_and_add(seen, 1);
	return TC_ACT_UNSPEC;
}
