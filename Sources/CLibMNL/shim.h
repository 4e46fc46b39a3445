// SPDX-License-Identifier: Apache-2.0
#pragma once
// libmnl and the netlink UAPIs it speaks: rtnetlink, and sock_diag for listening sockets.
#include <libmnl/libmnl.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/if_link.h>
#include <linux/if_addr.h>
#include <linux/neighbour.h>
#include <linux/veth.h>
#include <linux/if_arp.h>
#include <linux/sock_diag.h>
#include <linux/inet_diag.h>
