/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* clang's bpf target takes the host's byte order (bpfel on x86_64 and arm64). */
#pragma once
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#include <linux/byteorder/big_endian.h>
#else
#include <linux/byteorder/little_endian.h>
#endif
