// SPDX-License-Identifier: Apache-2.0
import CDatapathABI
import NodeStore
import NetAddress

// The keys and values of the datapath's maps, converted to and from the store's types: the one
// place the C layouts of bpf/lib are filled in and read back.

extension IPAddress {
    /// The endpoint map key of an IPv4 address: its four bytes in network order.
    var ipv4Key: UInt32 { bytes.withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) } }
    var ipv6Key: sp_addr6 {
        var key = sp_addr6()
        withUnsafeMutableBytes(of: &key.addr) { $0.copyBytes(from: bytes) }
        return key
    }

    init(ipv4Key: UInt32) { self = withUnsafeBytes(of: ipv4Key) { IPAddress(bytes: $0)! } }
    init(ipv6Key: sp_addr6) { self = withUnsafeBytes(of: ipv6Key.addr) { IPAddress(bytes: $0)! } }
}

extension sp_endpoint {
    init(ifindex: Int32, podMAC: MACAddress, hostMAC: MACAddress) {
        self.init()
        self.ifindex = UInt32(ifindex)
        withUnsafeMutableBytes(of: &pod_mac) { $0.copyBytes(from: podMAC.bytes) }
        withUnsafeMutableBytes(of: &host_mac) { $0.copyBytes(from: hostMAC.bytes) }
    }

    init(_ record: EndpointRecord) {
        self.init(ifindex: record.hostIndex, podMAC: record.podMAC, hostMAC: record.hostMAC)
    }
}

extension sp_service_key {
    /// The frontend of `service`: address, port in network order, protocol number and family.
    init(_ service: Service) {
        self.init()
        withUnsafeMutableBytes(of: &addr) { $0.copyBytes(from: service.address.bytes) }
        port = service.port.bigEndian
        proto = service.proto.number
        family = service.address.family.rawValue
    }
}

extension sp_backend {
    init(_ backend: Backend) {
        self.init()
        withUnsafeMutableBytes(of: &addr) { $0.copyBytes(from: backend.address.bytes) }
        port = backend.port.bigEndian
        family = backend.address.family.rawValue
    }
}

extension Service {
    /// The service a frontend key names, or nil for a protocol or family this build does not know.
    init?(mapKey key: sp_service_key) {
        guard let proto = Service.TransportProtocol.allCases.first(where: { $0.number == key.proto }),
              let address = IPAddress(mapBytes: key.addr, family: key.family) else { return nil }
        self.init(address: address, port: UInt16(bigEndian: key.port), proto: proto)
    }
}

extension Backend {
    init?(mapValue value: sp_backend) {
        guard let address = IPAddress(mapBytes: value.addr, family: value.family) else { return nil }
        self.init(address: address, port: UInt16(bigEndian: value.port))
    }
}

extension IPAddress {
    /// An address as the service and connection maps hold it: 16 bytes, IPv4 in the first four;
    /// `family` 4 or 6.
    init?(mapBytes bytes: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                           UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8), family: UInt8) {
        guard let family = IPAddress.Family(rawValue: family),
              let address = withUnsafeBytes(of: bytes, { IPAddress(bytes: $0.prefix(family.byteCount)) }) else { return nil }
        self = address
    }
}
