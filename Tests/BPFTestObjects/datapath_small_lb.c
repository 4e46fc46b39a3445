/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The datapath with smaller service maps: another layout of sp_services and sp_slots, for the
 * test that upgrades a node whose services must survive their maps being made anew. */
#define SP_MAX_SERVICES 4096
#include "../../bpf/datapath/bpf_lxc.c"
#include "../../bpf/datapath/bpf_host.c"
#include "../../bpf/datapath/bpf_sock.c"
