// SPDX-License-Identifier: Apache-2.0
import BPF
import NetAddress

/// Writes a fixed-size record field by field: strings NUL-padded to their slot, integers little
/// endian (the byte order of every host swiftpath runs on, and of the BPF programs that read them).
struct FixedWriter {
    private(set) var bytes: [UInt8] = []

    mutating func string(_ value: String, size: Int) {
        let utf8 = Array(value.utf8.prefix(size - 1))
        bytes += utf8 + [UInt8](repeating: 0, count: size - utf8.count)
    }

    mutating func raw(_ value: [UInt8], size: Int) {
        bytes += value.prefix(size) + [UInt8](repeating: 0, count: max(0, size - value.count))
    }

    mutating func integer<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value.littleEndian) { bytes += $0 }
    }

    /// family (1), prefix length (1), address (16).
    mutating func prefix(_ value: IPPrefix?) {
        integer(value?.family.rawValue ?? 0)
        integer(UInt8(value?.length ?? 0))
        raw(value?.address.bytes ?? [], size: 16)
    }

    mutating func address(_ value: IPAddress) {
        integer(value.family.rawValue)
        raw(value.bytes, size: 16)
    }

    /// Pads the record to `size`, its size in the map.
    func padded(to size: Int) -> [UInt8] {
        precondition(bytes.count <= size, "record layout outgrew its slot")
        return bytes + [UInt8](repeating: 0, count: size - bytes.count)
    }
}

/// Reads what `FixedWriter` wrote, in the same order.
struct FixedReader {
    private let bytes: [UInt8]
    private var offset = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    mutating func string(size: Int) -> String {
        let slot = bytes[offset..<offset + size]
        offset += size
        return String(decoding: slot.prefix { $0 != 0 }, as: UTF8.self)
    }

    mutating func raw(size: Int) -> [UInt8] {
        defer { offset += size }
        return Array(bytes[offset..<offset + size])
    }

    mutating func integer<T: FixedWidthInteger>(_: T.Type = T.self) -> T {
        defer { offset += MemoryLayout<T>.size }
        return bytes[offset..<offset + MemoryLayout<T>.size].withUnsafeBytes { T(littleEndian: $0.loadUnaligned(as: T.self)) }
    }

    mutating func prefix() -> IPPrefix? {
        let family: UInt8 = integer()
        let length: UInt8 = integer()
        let address = raw(size: 16)
        guard let family = IPAddress.Family(rawValue: family),
              let ip = IPAddress(bytes: address.prefix(family.byteCount)) else { return nil }
        return IPPrefix(address: ip, length: Int(length))
    }

    mutating func address() -> IPAddress? {
        let family: UInt8 = integer()
        let address = raw(size: 16)
        guard let family = IPAddress.Family(rawValue: family) else { return nil }
        return IPAddress(bytes: address.prefix(family.byteCount))
    }
}

/// FNV-1a, 64 bits: a stable hash for names that must map to the same key in every run.
public func fnv1a64(_ text: String) -> UInt64 {
    text.utf8.reduce(0xcbf2_9ce4_8422_2325) { ($0 ^ UInt64($1)) &* 0x100_0000_01b3 }
}
