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
    /// Returns the backends that left the set (their sockets are the caller's to terminate).
    @discardableResult
    public func setService(_ service: Service, backends: [Backend], affinitySeconds: UInt32 = 0) throws(StoreError) -> [Backend] {
        let key = serviceKey(service)
        let previous = try servicesMap.lookup(key, as: sp_service.self)
        let before = try previous.map { value throws(StoreError) in try slotBackends(of: value) } ?? []
        var id = UInt32.random(in: 1...UInt32.max)
        while try slotsMap.lookup(sp_slot_key(id: id, slot: 0), as: sp_backend.self) != nil { id = UInt32.random(in: 1...UInt32.max) }
        var slot: UInt32 = 0
        for backend in backends {
            for _ in 0..<backend.weight {
                try slotsMap.upsert(sp_slot_key(id: id, slot: slot), backendValue(backend))
                slot += 1
            }
        }
        try servicesMap.upsert(key, sp_service(id: id, slots: slot, flags: 0, affinity_seconds: affinitySeconds))
        if let previous { try deleteSlots(previous) }
        let staying = Set(backends.map { "\($0.address)|\($0.port)" })
        return before.filter { !staying.contains("\($0.address)|\($0.port)") }
    }

    /// Removes `service`. Returns its backends (all departed), or nil when there was no such service.
    @discardableResult
    public func deleteService(_ service: Service) throws(StoreError) -> [Backend]? {
        let key = serviceKey(service)
        guard let previous = try servicesMap.lookup(key, as: sp_service.self) else { return nil }
        let departed = try slotBackends(of: previous)
        try servicesMap.delete(key)
        try deleteSlots(previous)
        return departed
    }

    /// Every service with its backends (weights recovered from the slots) and its affinity timeout.
    public func services() throws(StoreError) -> [(service: Service, backends: [Backend], affinitySeconds: UInt32)] {
        var result: [(service: Service, backends: [Backend], affinitySeconds: UInt32)] = []
        for key in try servicesMap.keys(as: sp_service_key.self) {
            guard let value = try servicesMap.lookup(key, as: sp_service.self), let service = Self.service(key) else { continue }
            result.append((service, try slotBackends(of: value), value.affinity_seconds))
        }
        return result.sorted { $0.service.description < $1.service.description }
    }

    /// Makes the services exactly `desired`: sets every listed one, deletes every other. Returns
    /// the counts and every backend that left a service.
    public func applyServices(_ desired: [(service: Service, backends: [Backend], affinitySeconds: UInt32)]) throws(StoreError)
        -> (set: Int, deleted: Int, departures: [(service: Service, backend: Backend)]) {
        var departures: [(service: Service, backend: Backend)] = []
        for entry in desired {
            departures += try setService(entry.service, backends: entry.backends, affinitySeconds: entry.affinitySeconds)
                .map { (entry.service, $0) }
        }
        let wanted = Set(desired.map(\.service))
        var deleted = 0
        for key in try servicesMap.keys(as: sp_service_key.self) {
            guard let service = Self.service(key), !wanted.contains(service) else { continue }
            departures += (try deleteService(service) ?? []).map { (service, $0) }
            deleted += 1
        }
        return (desired.count, deleted, departures)
    }

    /// The backends in `service`'s slots, in slot order, weights recovered from repetitions.
    private func slotBackends(of service: sp_service) throws(StoreError) -> [Backend] {
        var weights: [Backend: Int] = [:]
        var order: [Backend] = []
        for slot in 0..<service.slots {
            guard let raw = try slotsMap.lookup(sp_slot_key(id: service.id, slot: slot), as: sp_backend.self),
                  let backend = Self.backend(raw) else { continue }
            if weights[backend] == nil { order.append(backend) }
            weights[backend, default: 0] += 1
        }
        return order.map { Backend(address: $0.address, port: $0.port, weight: weights[$0]!) }
    }

    private func deleteSlots(_ service: sp_service) throws(StoreError) {
        for slot in 0..<service.slots { try slotsMap.delete(sp_slot_key(id: service.id, slot: slot)) }
    }

    func serviceKey(_ service: Service) -> sp_service_key {
        var key = sp_service_key()
        withUnsafeMutableBytes(of: &key.addr) { $0.copyBytes(from: service.address.bytes) }
        key.port = service.port.bigEndian
        key.proto = service.proto.number
        key.family = service.address.family.rawValue
        return key
    }

    func backendValue(_ backend: Backend) -> sp_backend {
        var value = sp_backend()
        withUnsafeMutableBytes(of: &value.addr) { $0.copyBytes(from: backend.address.bytes) }
        value.port = backend.port.bigEndian
        value.family = backend.address.family.rawValue
        return value
    }

    static func service(_ key: sp_service_key) -> Service? {
        var key = key
        guard let family = IPAddress.Family(rawValue: key.family),
              let proto = Service.TransportProtocol.allCases.first(where: { $0.number == key.proto }),
              let address = withUnsafeBytes(of: &key.addr, { IPAddress(bytes: $0.prefix(family.byteCount)) }) else { return nil }
        return Service(address: address, port: UInt16(bigEndian: key.port), proto: proto)
    }

    static func backend(_ value: sp_backend) -> Backend? {
        var value = value
        guard let family = IPAddress.Family(rawValue: value.family),
              let address = withUnsafeBytes(of: &value.addr, { IPAddress(bytes: $0.prefix(family.byteCount)) }) else { return nil }
        return Backend(address: address, port: UInt16(bigEndian: value.port))
    }
}
