/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* BPF is a 64-bit machine. */
#pragma once
#define __BITS_PER_LONG 64
#include <asm-generic/bitsperlong.h>
