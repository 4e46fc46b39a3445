/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* swiftpath socket termination: two socket iterators that abort the TCP and UDP sockets the LB
 * translated to a backend that has since left its service.
 *
 * An object of its own, loaded only for a sweep: it needs the running kernel's BTF (CO-RE field
 * offsets, the bpf_sock_destroy() kfunc, the iterators' attach points), which the host-routing
 * and socket-LB programs do not. Keeping it apart spares every CNI ADD that parse (~11 MiB at
 * peak), and a kernel without bpf_sock_destroy() still runs the rest of the datapath. It shares
 * the LB's pinned maps with the datapath object; its own two maps live only as long as the sweep. */
#include "common.h"
#include "terminate.h"

SEC("iter/tcp")
int sock_terminate_tcp(struct bpf_iter__tcp *ctx)
{
	struct sock_common *sk = ctx->sk_common;

	if (!sk)
		return 0;
	unsigned char state = sk->skc_state;

	if (state == SP_TCP_TIME_WAIT || state == SP_TCP_NEW_SYN_RECV)
		return 0;	/* not full sockets: nothing to abort */
	terminate_if_departed(sk, IPPROTO_TCP);
	return 0;
}

SEC("iter/udp")
int sock_terminate_udp(struct bpf_iter__udp *ctx)
{
	struct udp_sock *udp = ctx->udp_sk;

	if (!udp)
		return 0;
	terminate_if_departed((struct sock_common *)udp, IPPROTO_UDP);
	return 0;
}
