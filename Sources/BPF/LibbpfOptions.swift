// SPDX-License-Identifier: Apache-2.0
/// The `sz` of a libbpf options struct: the end of its last field (libbpf's `<type>__last_field`).
/// libbpf refuses non-zero bytes past that field, and Swift does not promise zeroed tail padding
/// in a struct it has copied, so `MemoryLayout<T>.size` would work only by chance.
func libbpfOptionsSize<Options, Field>(_ lastField: KeyPath<Options, Field>) -> Int {
    MemoryLayout<Options>.offset(of: lastField)! + MemoryLayout<Field>.size
}
