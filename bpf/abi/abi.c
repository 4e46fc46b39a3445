/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* SwiftPM wants a source file in every C target; the ABI is all in include/datapath_abi.h. */
#include "datapath_abi.h"
