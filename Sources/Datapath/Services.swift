import BPFStore
import CDatapathABI
import CLibBPF
import NetAddress

/// A load-balanced service: a VIP, a port and a protocol.
public struct Service: Hashable, Sendable, CustomStringConvertible {
    public enum TransportProtocol: String, Sendable, CaseIterable {
        case tcp, udp
        var number: UInt8 { self == .tcp ? 6 : 17 }
    }

    public let address: IPAddress
    public let port: UInt16
    public let proto: TransportProtocol

    public init(address: IPAddress, port: UInt16, proto: TransportProtocol) {
        self.address = address
        self.port = port
        self.proto = proto
    }

    /// "10.96.0.10:53/udp", "[fd00::10]:53/udp".
    public init?(_ text: some StringProtocol) {
        let parts = text.split(separator: "/")
        guard parts.count == 2, let proto = TransportProtocol(rawValue: parts[1].lowercased()),
              let (address, port) = parseAddressAndPort(parts[0]) else { return nil }
        self.init(address: address, port: port, proto: proto)
    }

    public var description: String { "\(formatAddressAndPort(address, port))/\(proto.rawValue)" }
}

/// A backend of a service, with its share of new connections.
public struct Backend: Hashable, Sendable, CustomStringConvertible {
    public let address: IPAddress
    public let port: UInt16
    public let weight: Int

    public init(address: IPAddress, port: UInt16, weight: Int = 1) {
        self.address = address
        self.port = port
        self.weight = weight
    }

    /// "10.1.2.3:8080", "[fd00::3]:8080", with an optional "@WEIGHT" (1 to 100).
    public init?(_ text: some StringProtocol) {
        let parts = text.split(separator: "@")
        guard parts.count <= 2, let (address, port) = parseAddressAndPort(parts[0]) else { return nil }
        let weight = parts.count == 2 ? Int(parts[1]) : 1
        guard let weight, (1...100).contains(weight) else { return nil }
        self.init(address: address, port: port, weight: weight)
    }

    public var description: String { formatAddressAndPort(address, port) + (weight == 1 ? "" : "@\(weight)") }
}

func parseAddressAndPort(_ text: some StringProtocol) -> (IPAddress, UInt16)? {
    let text = String(text)
    let host: Substring, port: Substring
    if text.hasPrefix("[") {
        guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else { return nil }
        host = text[text.index(after: text.startIndex)..<close]
        port = text[text.index(close, offsetBy: 2)...]
    } else {
        guard let colon = text.lastIndex(of: ":"), !text[..<colon].contains(":") else { return nil }
        host = text[..<colon]
        port = text[text.index(after: colon)...]
    }
    guard let address = IPAddress(host), let number = UInt16(port), number > 0 else { return nil }
    return (address, number)
}

func formatAddressAndPort(_ address: IPAddress, _ port: UInt16) -> String {
    address.isIPv4 ? "\(address):\(port)" : "[\(address)]:\(port)"
}

extension Datapath {
    /// Creates or replaces `service`'s backends. The new set is written under a fresh id first and
    /// the service entry swapped to it in one map update: a connect sees the old set or the new one.
    /// An empty set keeps the service, refusing new connections.
    public func setService(_ service: Service, backends: [Backend]) throws(StoreError) {
        let key = serviceKey(service)
        let previous = try servicesMap.lookup(key, as: sp_service.self)
        var id = UInt32.random(in: 1...UInt32.max)
        while try slotsMap.lookup(sp_slot_key(id: id, slot: 0), as: sp_backend.self) != nil { id = UInt32.random(in: 1...UInt32.max) }
        var slot: UInt32 = 0
        for backend in backends {
            for _ in 0..<backend.weight {
                try slotsMap.upsert(sp_slot_key(id: id, slot: slot), backendValue(backend))
                slot += 1
            }
        }
        try servicesMap.upsert(key, sp_service(id: id, slots: slot, flags: 0, reserved: 0))
        if let previous { try deleteSlots(previous) }
    }

    /// Removes `service`. Returns false when there was none.
    @discardableResult
    public func deleteService(_ service: Service) throws(StoreError) -> Bool {
        let key = serviceKey(service)
        guard let previous = try servicesMap.lookup(key, as: sp_service.self) else { return false }
        try servicesMap.delete(key)
        try deleteSlots(previous)
        return true
    }

    /// Every service with its backends (weights recovered from the slots).
    public func services() throws(StoreError) -> [(service: Service, backends: [Backend])] {
        var result: [(service: Service, backends: [Backend])] = []
        for key in try servicesMap.keys(as: sp_service_key.self) {
            guard let value = try servicesMap.lookup(key, as: sp_service.self), let service = Self.service(key) else { continue }
            var weights: [Backend: Int] = [:]
            var order: [Backend] = []
            for slot in 0..<value.slots {
                guard let raw = try slotsMap.lookup(sp_slot_key(id: value.id, slot: slot), as: sp_backend.self),
                      let backend = Self.backend(raw) else { continue }
                if weights[backend] == nil { order.append(backend) }
                weights[backend, default: 0] += 1
            }
            result.append((service, order.map { Backend(address: $0.address, port: $0.port, weight: weights[$0]!) }))
        }
        return result.sorted { $0.service.description < $1.service.description }
    }

    /// Makes the services exactly `desired`: sets every listed one, deletes every other.
    public func applyServices(_ desired: [(service: Service, backends: [Backend])]) throws(StoreError) -> (set: Int, deleted: Int) {
        for entry in desired { try setService(entry.service, backends: entry.backends) }
        let wanted = Set(desired.map(\.service))
        var deleted = 0
        for key in try servicesMap.keys(as: sp_service_key.self) {
            guard let service = Self.service(key), !wanted.contains(service) else { continue }
            try deleteService(service)
            deleted += 1
        }
        return (desired.count, deleted)
    }

    private func deleteSlots(_ service: sp_service) throws(StoreError) {
        for slot in 0..<service.slots { try slotsMap.delete(sp_slot_key(id: service.id, slot: slot)) }
    }

    private func serviceKey(_ service: Service) -> sp_service_key {
        var key = sp_service_key()
        withUnsafeMutableBytes(of: &key.addr) { $0.copyBytes(from: service.address.bytes) }
        key.port = service.port.bigEndian
        key.proto = service.proto.number
        key.family = service.address.family.rawValue
        return key
    }

    private func backendValue(_ backend: Backend) -> sp_backend {
        var value = sp_backend()
        withUnsafeMutableBytes(of: &value.addr) { $0.copyBytes(from: backend.address.bytes) }
        value.port = backend.port.bigEndian
        value.family = backend.address.family.rawValue
        return value
    }

    private static func service(_ key: sp_service_key) -> Service? {
        var key = key
        guard let family = IPAddress.Family(rawValue: key.family),
              let proto = Service.TransportProtocol.allCases.first(where: { $0.number == key.proto }),
              let address = withUnsafeBytes(of: &key.addr, { IPAddress(bytes: $0.prefix(family.byteCount)) }) else { return nil }
        return Service(address: address, port: UInt16(bigEndian: key.port), proto: proto)
    }

    private static func backend(_ value: sp_backend) -> Backend? {
        var value = value
        guard let family = IPAddress.Family(rawValue: value.family),
              let address = withUnsafeBytes(of: &value.addr, { IPAddress(bytes: $0.prefix(family.byteCount)) }) else { return nil }
        return Backend(address: address, port: UInt16(bigEndian: value.port))
    }
}
