// SPDX-License-Identifier: Apache-2.0
/// Hand-made frames for BPF_PROG_TEST_RUN: Ethernet, then IPv4 or IPv6, then an 8-byte UDP-like
/// header and a little payload.
enum Packets {
    static func ipv4(from srcMAC: [UInt8], to dstMAC: [UInt8], _ src: [UInt8], _ dst: [UInt8], ttl: UInt8 = 64,
                     proto: UInt8 = 17, options: Int = 0, fragmentField: UInt16 = 0, totalLength: Int? = nil,
                     payload: [UInt8] = [UInt8](repeating: 0xab, count: 16)) -> [UInt8] {
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

    /// An IPv6 packet whose upper-layer header (`upper`, with `payload`) follows the extension
    /// headers `extensions`, each 8 bytes long: hop-by-hop, destination options and routing
    /// headers padded with PadN (a routing header of type 0 with no segments left), fragment
    /// headers with `fragmentField` (offset << 3 | more).
    static func ipv6(from srcMAC: [UInt8], to dstMAC: [UInt8], _ src: [UInt8], _ dst: [UInt8], hopLimit: UInt8 = 64,
                     extensions: [UInt8], upper: UInt8, payload: [UInt8], fragmentField: UInt16 = 0) -> [UInt8] {
        var chain: [UInt8] = []
        for (index, kind) in extensions.enumerated() {
            let next = index + 1 < extensions.count ? extensions[index + 1] : upper
            switch kind {
            case 44: chain += [next, 0, UInt8(fragmentField >> 8), UInt8(fragmentField & 0xff), 0, 0, 0x12, 0x34]
            case 43: chain += [next, 0, 0, 0, 0, 0, 0, 0]
            default: chain += [next, 0, 1, 4, 0, 0, 0, 0]
            }
        }
        return ipv6(from: srcMAC, to: dstMAC, src, dst, hopLimit: hopLimit, nextHeader: extensions.first ?? upper,
                    payload: chain + payload)
    }

    /// An ICMPv6 message of `type` (checksum left 0: the datapath never reads it), padded to 24 bytes.
    static func icmp6(_ type: UInt8) -> [UInt8] { [type, 0] + [UInt8](repeating: 0, count: 22) }

    /// ARP for IPv4 over Ethernet: `op` 1 asks, 2 answers; the sender's MAC and address are what the
    /// receiver learns.
    static func arp(from srcMAC: [UInt8], to dstMAC: [UInt8] = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff], op: UInt8 = 1,
                    senderMAC: [UInt8]? = nil, senderIP: [UInt8], targetIP: [UInt8]) -> [UInt8] {
        dstMAC + srcMAC + [0x08, 0x06] + [0, 1, 0x08, 0x00, 6, 4, 0, op] + (senderMAC ?? srcMAC) + senderIP
            + [UInt8](repeating: 0, count: 6) + targetIP
    }

    /// A frame of any other ethertype, with `payload`.
    static func ethernet(from srcMAC: [UInt8], to dstMAC: [UInt8], type: UInt16, payload: [UInt8]) -> [UInt8] {
        dstMAC + srcMAC + [UInt8(type >> 8), UInt8(type & 0xff)] + payload
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

    /// A TCP segment (20-byte header, `flags`, `seq` and `ack`, a little payload) or a UDP datagram, with right
    /// checksums (a UDP checksum of 0 when `udpChecksum` is false), in IPv4 or IPv6 by the
    /// addresses' length.
    static func transport(from srcMAC: [UInt8], to dstMAC: [UInt8], _ src: [UInt8], _ dst: [UInt8], proto: UInt8,
                          sport: UInt16, dport: UInt16, flags: UInt8 = 0x02, udpChecksum: Bool = true,
                          seq: UInt32 = 1, ack: UInt32 = 0) -> [UInt8] {
        let payload = [UInt8](repeating: 0xab, count: 12)
        var l4: [UInt8] = [UInt8(sport >> 8), UInt8(sport & 0xff), UInt8(dport >> 8), UInt8(dport & 0xff)]
        if proto == 6 {
            l4 += bigEndian(seq) + bigEndian(ack) + [0x50, flags, 0xff, 0xff, 0, 0, 0, 0]
        } else {
            let length = 8 + payload.count
            l4 += [UInt8(length >> 8), UInt8(length & 0xff), 0, 0]
        }
        l4 += payload
        let sum = checksum(pseudoHeader(src, dst, proto: proto, length: l4.count) + l4)
        let checksumOffset = proto == 6 ? 16 : 6
        if proto == 6 || udpChecksum {
            l4[checksumOffset] = UInt8(sum >> 8)
            l4[checksumOffset + 1] = UInt8(sum & 0xff)
        }
        var frame = src.count == 4 ? ipv4(from: srcMAC, to: dstMAC, src, dst, proto: proto, totalLength: 20 + l4.count)
            : ipv6(from: srcMAC, to: dstMAC, src, dst, nextHeader: proto, payload: l4)
        if src.count == 4 { frame = Array(frame.prefix(34)) + l4 }
        return frame
    }

    static func bigEndian(_ value: UInt32) -> [UInt8] { [UInt8(value >> 24), UInt8(value >> 16 & 0xff), UInt8(value >> 8 & 0xff), UInt8(value & 0xff)] }

    static func pseudoHeader(_ src: [UInt8], _ dst: [UInt8], proto: UInt8, length: Int) -> [UInt8] {
        src.count == 4 ? src + dst + [0, proto, UInt8(length >> 8), UInt8(length & 0xff)]
            : src + dst + [0, 0, UInt8(length >> 8), UInt8(length & 0xff), 0, 0, 0, proto]
    }

    /// What a transport() frame carries after a program rewrote it.
    struct Transport: Equatable {
        var src: [UInt8], dst: [UInt8], sport: UInt16, dport: UInt16
        /// The IPv4 header checksum (when IPv4) and the transport checksum are right; a UDP
        /// checksum of 0 counts as right.
        var checksumsRight: Bool
        var rawChecksum: UInt16
    }

    static func transport(of frame: [UInt8]) -> Transport {
        let v4 = frame[12] == 0x08
        let l3 = Array(frame[14..<(v4 ? 34 : 54)])
        let (src, dst) = v4 ? (Array(l3[12..<16]), Array(l3[16..<20])) : (Array(l3[8..<24]), Array(l3[24..<40]))
        let proto = v4 ? l3[9] : l3[6]
        let l4 = Array(frame[(v4 ? 34 : 54)...])
        let raw = UInt16(l4[proto == 6 ? 16 : 6]) << 8 | UInt16(l4[proto == 6 ? 17 : 7])
        let l4Right = (proto == 17 && raw == 0) || checksum(pseudoHeader(src, dst, proto: proto, length: l4.count) + l4) == 0
        return Transport(src: src, dst: dst, sport: UInt16(l4[0]) << 8 | UInt16(l4[1]), dport: UInt16(l4[2]) << 8 | UInt16(l4[3]),
                         checksumsRight: l4Right && (!v4 || checksum(l3) == 0), rawChecksum: raw)
    }
}
