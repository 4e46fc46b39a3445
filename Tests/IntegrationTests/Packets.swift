// SPDX-License-Identifier: Apache-2.0
/// Hand-made frames for BPF_PROG_TEST_RUN: Ethernet, then IPv4 or IPv6, then an 8-byte UDP-like
/// header and a little payload.
enum Packets {
    static func ipv4(from srcMAC: [UInt8], to dstMAC: [UInt8], _ src: [UInt8], _ dst: [UInt8], ttl: UInt8 = 64,
                     proto: UInt8 = 17, options: Int = 0, fragmentField: UInt16 = 0, totalLength: Int? = nil) -> [UInt8] {
        let payload = [UInt8](repeating: 0xab, count: 16)
        let headerLength = 20 + options * 4
        let total = totalLength ?? headerLength + payload.count
        var ip: [UInt8] = [UInt8(0x40 | (headerLength / 4)), 0, UInt8(total >> 8), UInt8(total & 0xff), 0x12, 0x34,
                           UInt8(fragmentField >> 8), UInt8(fragmentField & 0xff), ttl, proto, 0, 0] + src + dst
        ip += [UInt8](repeating: 1, count: options * 4)   // NOP options
        let sum = checksum(ip)
        ip[10] = UInt8(sum >> 8)
        ip[11] = UInt8(sum & 0xff)
        return dstMAC + srcMAC + [0x08, 0x00] + ip + payload
    }

    static func ipv6(from srcMAC: [UInt8], to dstMAC: [UInt8], _ src: [UInt8], _ dst: [UInt8], hopLimit: UInt8 = 64,
                     nextHeader: UInt8 = 17, payload: [UInt8] = [UInt8](repeating: 0xab, count: 16)) -> [UInt8] {
        let header: [UInt8] = [0x60, 0, 0, 0, UInt8(payload.count >> 8), UInt8(payload.count & 0xff), nextHeader, hopLimit] + src + dst
        return dstMAC + srcMAC + [0x86, 0xdd] + header + payload
    }

    static func arp(from srcMAC: [UInt8]) -> [UInt8] {
        [0xff, 0xff, 0xff, 0xff, 0xff, 0xff] + srcMAC + [0x08, 0x06] + [UInt8](repeating: 0, count: 28)
    }

    /// The Internet checksum of an IPv4 header (0 when the header's own checksum is right).
    static func checksum(_ bytes: [UInt8]) -> UInt16 {
        var sum: UInt32 = 0
        for index in stride(from: 0, to: bytes.count, by: 2) {
            sum += UInt32(bytes[index]) << 8 | UInt32(index + 1 < bytes.count ? bytes[index + 1] : 0)
        }
        while sum >> 16 != 0 { sum = (sum & 0xffff) + (sum >> 16) }
        return ~UInt16(sum)
    }
}
