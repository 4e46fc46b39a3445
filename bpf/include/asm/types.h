/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The arch-specific corner of the UAPI headers, for the one architecture the programs are built
 * for: BPF. The host's own asm/ folder (under /usr/include/<triple>) is never searched, so the
 * objects build alike on x86_64 and arm64 hosts. */
#pragma once
#include <asm-generic/types.h>
