/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* No arch-specific byte swaps: linux/swab.h falls back to its generic ones, which clang folds into
 * BPF's own byte-swap instructions. */
#pragma once
