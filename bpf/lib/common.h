/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* What every datapath file needs: UAPI types, libbpf's helper declarations, a few constants the
 * Debian 12 headers predate. */
#pragma once
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/icmpv6.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "datapath_abi.h"

#ifndef AF_INET
#define AF_INET 2
#endif
#ifndef AF_INET6
#define AF_INET6 10
#endif

/* Each program file is compiled alone, and the files of one object are linked by libbpf's static
 * linker (see Tools/bpf-embed). What the shared headers define (the licence, every map) is weak,
 * so the linker merges the files' identical copies into one. */
char LICENSE[] SEC("license") __weak = "Dual BSD/GPL";

/* bpf_fib_lookup() flags of Linux 6.3 and 6.8, enum values the Debian 12 UAPI headers lack. */
#define SP_FIB_LOOKUP_SKIP_NEIGH (1U << 2)
#define SP_FIB_LOOKUP_SRC (1U << 4)

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
