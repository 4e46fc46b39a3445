// SPDX-License-Identifier: Apache-2.0
// BPF objects that only the tests load: Tests/BPFTestObjects/*.c, compiled and embedded by the
// BPFCompiler plugin like the datapath itself (see BPFObject.datapath_variant, .other_tool).
@_exported import BPFObjects
