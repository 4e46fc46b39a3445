/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The datapath plus one more program: another build (another hash) with the same programs and
 * maps, for the test that upgrades a running node in place. */
#include "../../bpf/datapath/bpf_lxc.c"
#include "../../bpf/datapath/bpf_host.c"
#include "../../bpf/datapath/bpf_sock.c"

SEC("tc")
int variant_marker(struct __sk_buff *skb)
{
	return TC_ACT_UNSPEC;
}
