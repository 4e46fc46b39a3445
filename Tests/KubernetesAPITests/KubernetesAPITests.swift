// SPDX-License-Identifier: Apache-2.0
import Foundation
import KubeStandIn
@testable import KubernetesAPI
import Logging
import XCTest

/// The API client against the stand-in on loopback: TLS with the cluster's own CA and a bearer
/// token, list then watch, bookmarks, 410 Gone, dropped connections.
final class KubernetesAPITests: XCTestCase {
    private var standIn: KubeStandIn!
    private var client: KubeClient!

    override func setUpWithError() throws {
        standIn = try KubeStandIn()
        client = try KubeClient(access: ClusterAccess.kubeconfig(at: standIn.kubeconfig()))
        addTeardownBlock { [standIn, client] in
            await client?.shutdown()
            standIn?.stop()
        }
    }

    func testKubeconfigIsReadAsKubectlReadsIt() throws {
        let access = try ClusterAccess.kubeconfig(at: standIn.kubeconfig())
        XCTAssertEqual(access.server, standIn.server)
        XCTAssertEqual(try access.currentToken(), standIn.token)
        XCTAssertEqual(access.caPEM.map { Data($0) }, try Data(contentsOf: URL(fileURLWithPath: standIn.caPath)))
        XCTAssertEqual(try ClusterAccess.kubeconfig(at: standIn.kubeconfig(), server: "https://10.9.9.9:6443").server,
                       "https://10.9.9.9:6443", "--api-server overrides the kubeconfig's address")
    }

    /// Credentials never leave over plain HTTP (but to loopback), and a CA is never silently
    /// ignored for insecure-skip-tls-verify.
    func testCredentialsAreNeverSentInClear() throws {
        for server in ["http://10.9.9.9:6443", "http://api.example:80", "ftp://10.9.9.9", "http://127.evil.example:80"] {
            XCTAssertThrowsError(try KubeClient(access: ClusterAccess(server: server, token: .literal("secret"))), server)
        }
        var both = try ClusterAccess.kubeconfig(at: standIn.kubeconfig())
        both.insecureSkipTLSVerify = true
        XCTAssertThrowsError(try KubeClient(access: both)) { error in
            XCTAssertTrue("\(error)".contains("insecure-skip-tls-verify"), "\(error)")
        }
        for server in ["http://127.0.0.1:8080", "http://[::1]:8080", "http://localhost:8080", "https://10.9.9.9:6443"] {
            let client = try KubeClient(access: ClusterAccess(server: server, token: .literal("secret")))
            let done = expectation(description: "shut down")
            Task { await client.shutdown(); done.fulfill() }
            wait(for: [done], timeout: 10)
        }
    }

    func testInClusterReadsTheServiceAccountAndRereadsItsToken() throws {
        let folder = standIn.folder + "/sa"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: standIn.caPath, toPath: folder + "/ca.crt")
        try "first\n".write(toFile: folder + "/token", atomically: true, encoding: .utf8)
        let access = try ClusterAccess.inCluster(server: nil, environment: ["KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"],
                                                 folder: folder)
        XCTAssertEqual(access.server, "https://[fd00::1]:443")
        XCTAssertEqual(try access.currentToken(), "first")
        try "rotated".write(toFile: folder + "/token", atomically: true, encoding: .utf8)
        XCTAssertEqual(try access.currentToken(), "rotated", "a rotated token is read again")
        XCTAssertThrowsError(try ClusterAccess.inCluster(server: nil, environment: [:], folder: folder))
    }

    func testListWatchesWithTheClustersCA() async throws {
        try standIn.putNode("a", podCIDRs: ["10.1.1.0/24", "fd00:1:1::/64"], internalIPs: ["10.0.0.1", "fd00::1"])
        let list = try await client.list("/api/v1/nodes", as: Node.self)
        XCTAssertEqual(list.items.map(\.metadata.name), ["a"])
        XCTAssertEqual(list.items.first?.podCIDRs, ["10.1.1.0/24", "fd00:1:1::/64"])
        XCTAssertEqual(list.items.first?.internalIPs, ["10.0.0.1", "fd00::1"])
        let version = try XCTUnwrap(list.metadata.resourceVersion)

        try standIn.putNode("b", podCIDRs: ["10.1.2.0/24"], internalIPs: ["10.0.0.2"])
        try standIn.deleteNode("a")
        var seen: [String] = []
        for try await event in client.watch("/api/v1/nodes", from: version, as: Node.self, timeoutSeconds: 3) {
            switch event {
            case .added(let node): seen.append("ADDED \(node.metadata.name)")
            case .modified(let node): seen.append("MODIFIED \(node.metadata.name)")
            case .deleted(let node): seen.append("DELETED \(node.metadata.name)")
            case .bookmark: seen.append("BOOKMARK")
            case .error(let status): seen.append("ERROR \(status.code ?? 0)")
            }
        }
        XCTAssertEqual(Array(seen.prefix(2)), ["ADDED b", "DELETED a"])
        XCTAssertTrue(seen.dropFirst(2).allSatisfy { $0 == "BOOKMARK" }, "\(seen)")
    }

    /// A list comes in pages, every page from the first one's snapshot: what is written between
    /// pages shows in the watch that follows, not in the list. A snapshot compacted away before
    /// the last page (410 Expired) is not pieced together with a newer one: the collection is
    /// listed again in one answer.
    func testListsArePagedFromOneSnapshot() async throws {
        for name in ["a", "b", "c", "d", "e"] { try standIn.putNode(name, podCIDRs: [], internalIPs: []) }
        let first = try await client.listPage("/api/v1/nodes", as: Node.self, limit: 2, continuing: nil)
        XCTAssertEqual(first.items.map(\.metadata.name), ["a", "b"])
        let token = try XCTUnwrap(first.metadata.continueToken)
        try standIn.putNode("bb", podCIDRs: [], internalIPs: [])
        try standIn.deleteNode("e")
        let second = try await client.listPage("/api/v1/nodes", as: Node.self, limit: 2, continuing: token)
        XCTAssertEqual(second.items.map(\.metadata.name), ["c", "d"], "the snapshot's objects, not the new one")
        XCTAssertEqual(second.metadata.resourceVersion, first.metadata.resourceVersion)
        let third = try await client.listPage("/api/v1/nodes", as: Node.self, limit: 2, continuing: second.metadata.continueToken)
        XCTAssertEqual(third.items.map(\.metadata.name), ["e"], "deleted after the snapshot, still in it")
        XCTAssertNil(third.metadata.continueToken)

        let whole = try await client.list("/api/v1/nodes", as: Node.self, pageSize: 2)
        XCTAssertEqual(whole.items.map(\.metadata.name), ["a", "b", "bb", "c", "d"])
        XCTAssertEqual(try standIn.stats()["pages"], 2 + 2, "two continued pages each time")

        try standIn.compact()
        let refused: KubeError?
        do {
            _ = try await client.listPage("/api/v1/nodes", as: Node.self, limit: 2, continuing: token)
            refused = nil
        } catch {
            refused = error
        }
        guard case .gone? = refused else { return XCTFail("a compacted snapshot's token is refused with 410: \(String(describing: refused))") }

        // Compacted as the second page is asked for: listed again whole, not pieced together.
        try standIn.compact(afterPages: 1)
        let gone = try XCTUnwrap(try standIn.stats()["gone"])
        let relisted = try await client.list("/api/v1/nodes", as: Node.self, pageSize: 2)
        XCTAssertEqual(try standIn.stats()["gone"], gone + 1, "the second page's snapshot was gone")
        XCTAssertEqual(relisted.items.map(\.metadata.name), ["a", "b", "bb", "c", "d"])
        XCTAssertNil(relisted.metadata.continueToken)

        // A list again, not older than what was seen: one answer, the watch cache's.
        let cached = try await client.list("/api/v1/nodes", as: Node.self, notOlderThan: relisted.metadata.resourceVersion, pageSize: 2)
        XCTAssertEqual(cached.items.map(\.metadata.name), ["a", "b", "bb", "c", "d"])
        XCTAssertEqual(try standIn.stats()["not_older_than"], 1)
        // One the server has not reached yet: a consistent read instead.
        let ahead = try await client.list("/api/v1/nodes", as: Node.self, notOlderThan: "999999", pageSize: 2)
        XCTAssertEqual(ahead.items.count, 5)
    }

    /// Namespaced collections: Services (core/v1) and EndpointSlices (discovery.k8s.io/v1), keyed
    /// by namespace and name; one resourceVersion counts the writes of every collection.
    func testServicesAndEndpointSlicesAreListedAndWatchedByNamespaceAndName() async throws {
        try standIn.putService("default", "web", clusterIPs: ["10.96.0.10", "fd00:96::10"], ports: [("http", "TCP", 80)])
        try standIn.putService("other", "web", clusterIPs: ["10.96.0.11"], ports: [("http", "TCP", 80)])
        let services = try await client.list("/api/v1/services", as: Service.self)
        XCTAssertEqual(services.items.map(\.metadata.key), ["default/web", "other/web"])
        XCTAssertEqual(services.items.first?.spec?.clusterIPs, ["10.96.0.10", "fd00:96::10"])
        XCTAssertEqual(services.items.first?.spec?.ports, [Service.Port(name: "http", protocol: "TCP", port: 80)])

        let slices = Reflector<EndpointSlice>(client: client, path: "/apis/discovery.k8s.io/v1/endpointslices", logger: Logger(label: "test"))
        let changes = Changes<EndpointSlice>()
        let running = Task { await slices.run(timeoutSeconds: 5) { await changes.record($0, $1) } }
        defer { running.cancel() }
        try await eventually { await changes.last?.isEmpty == true }
        try standIn.putEndpointSlice("default", "web-abc", service: "web", addressType: "IPv4", ports: [("http", "TCP", 8080)],
                                     endpoints: [.init("10.1.1.5", node: "a"), .init("10.1.2.5", node: "b", ready: false, terminating: true)])
        try standIn.putService("default", "db", clusterIPs: ["10.96.0.12"], ports: [("pg", "TCP", 5432)])   // another collection's write
        try await eventually { await changes.last?["default/web-abc"] != nil }
        let handedOn = await changes.last
        let slice = try XCTUnwrap(handedOn?["default/web-abc"])
        XCTAssertEqual(slice.metadata.labels?[EndpointSlice.serviceNameLabel], "web")
        XCTAssertEqual(slice.endpoints?.map(\.addresses), [["10.1.1.5"], ["10.1.2.5"]])
        XCTAssertEqual(slice.endpoints?.last?.conditions, .init(ready: false, serving: true, terminating: true))
        XCTAssertEqual(slice.ports, [.init(name: "http", protocol: "TCP", port: 8080)])
        try standIn.deleteEndpointSlice("default", "web-abc")
        try await eventually { await changes.last?.isEmpty == true }
        let count = await changes.count
        XCTAssertEqual(count, 3, "the first list, the slice, its deletion: the Service written meanwhile is not this watch's")
    }

    func testAWrongTokenIsRefused() async throws {
        var access = try ClusterAccess.kubeconfig(at: standIn.kubeconfig())
        access.token = .literal("wrong")
        let badToken = try KubeClient(access: access)
        do {
            _ = try await badToken.list("/api/v1/nodes", as: Node.self)
            XCTFail("a wrong token lists nothing")
        } catch {
            guard case .status(401, _) = error else { return XCTFail("\(error)") }
        }
        await badToken.shutdown()
    }

    func testAServerOfAnotherCAIsNotTrusted() async throws {
        var otherCA = try ClusterAccess.kubeconfig(at: standIn.kubeconfig())
        let stranger = try KubeStandIn()
        otherCA.caPEM = Array(try Data(contentsOf: URL(fileURLWithPath: stranger.caPath)))
        stranger.stop()
        let untrusting = try KubeClient(access: otherCA)
        do {
            _ = try await untrusting.list("/api/v1/nodes", as: Node.self)
            XCTFail("a server signed by another CA is not trusted")
        } catch {
            guard case .transport = error else { return XCTFail("\(error)") }
        }
        await untrusting.shutdown()
    }

    /// Node "a" in the API, and a reflector of the Nodes running, its changes recorded.
    private func nodeReflector() throws -> (Reflector<Node>, Changes<Node>, Task<Void, Never>) {
        try standIn.putNode("a", podCIDRs: ["10.1.1.0/24"], internalIPs: ["10.0.0.1"])
        let reflector = Reflector<Node>(client: client, path: "/api/v1/nodes", logger: Logger(label: "test"))
        let changes = Changes<Node>()
        return (reflector, changes, Task { await reflector.run(timeoutSeconds: 5) { await changes.record($0, $1) } })
    }

    /// A watch the server refuses with another status than 410 (403: its RBAC changed, say) is
    /// not resumed as if nothing happened: once the server answers again, the reflector lists.
    func testReflectorListsAgainAfterARefusal() async throws {
        let (_, changes, running) = try nodeReflector()
        defer { running.cancel() }
        try await eventually { await changes.last?.keys.sorted() == ["a"] }
        let lists = try XCTUnwrap(try standIn.stats()["list"])
        try standIn.forbid("nodes")
        try standIn.dropWatches()
        try await Task.sleep(nanoseconds: 1_000_000_000)
        try standIn.allow("nodes")
        try await eventually { (try? self.standIn.stats()["list"]) ?? 0 > lists }
    }

    /// The reflector's copy follows the API through dropped connections and a 410 (which makes
    /// it list again); a relist that finds nothing new hands nothing on.
    func testReflectorFollowsTheAPIThroughDropsAndGone() async throws {
        let (reflector, changes, running) = try nodeReflector()
        defer { running.cancel() }

        try await eventually { await changes.last?.keys.sorted() == ["a"] }
        try standIn.putNode("b", podCIDRs: ["10.1.2.0/24"], internalIPs: ["10.0.0.2"])
        try await eventually { await changes.last?.keys.sorted() == ["a", "b"] }

        // A cut connection: the watch resumes from where it was, nothing is listed again.
        try standIn.dropWatches()
        try standIn.putNode("b", podCIDRs: ["10.1.2.0/24"], internalIPs: ["10.0.0.22"])
        try await eventually { await changes.last?["b"]?.internalIPs == ["10.0.0.22"] }
        XCTAssertEqual(try standIn.stats()["list"], 1)

        // History compacted and the watch cut: its version is gone, so the reflector lists again;
        // the list changes nothing, so nothing is handed on.
        let before = await changes.count
        try standIn.compact()
        try standIn.dropWatches()
        try await eventually { (try? self.standIn.stats()["list"]) == 2 }
        XCTAssertEqual(try standIn.stats()["not_older_than"], 1, "listed again from the watch cache, not etcd")
        try await Task.sleep(nanoseconds: 500_000_000)
        let after = await changes.count
        XCTAssertEqual(after, before, "a relist that finds what the copy holds hands nothing on")
        XCTAssertGreaterThanOrEqual(try standIn.stats()["gone"] ?? 0, 1)

        // A change missed while the history was compacted and the watch cut: the relist finds it
        // and names that one key.
        try standIn.compact()
        try standIn.dropWatches()
        try standIn.deleteNode("a")
        try await eventually { await changes.last?.keys.sorted() == ["b"] }
        let named = await changes.keys
        XCTAssertEqual(named.first, ["a"], "the first list names every key")
        XCTAssertEqual(named.last, ["a"], "the deletion names its key only")
        let synced = await reflector.synced
        XCTAssertTrue(synced)
    }

    func testBackoffGrowsWithJitterAndResets() {
        var backoff = Backoff()
        let first = backoff.next()
        XCTAssertLessThanOrEqual(first, Backoff.first)
        var last: UInt64 = 0
        for _ in 0..<20 { last = backoff.next() }
        XCTAssertLessThanOrEqual(last, Backoff.ceiling)
        XCTAssertGreaterThanOrEqual(last, Backoff.ceiling / 2)
        backoff.reset()
        XCTAssertLessThanOrEqual(backoff.next(), Backoff.first)
    }
}

/// What a reflector handed on, in order: the copy, and the keys it named as changed.
actor Changes<Object: KubeObject> {
    private(set) var all: [[String: Object]] = []
    private(set) var keys: [Set<String>] = []
    var last: [String: Object]? { all.last }
    var count: Int { all.count }
    func record(_ objects: [String: Object], _ changed: Set<String>) {
        all.append(objects)
        keys.append(changed)
    }
}

func eventually(seconds: Double = 15, _ condition: () async -> Bool) async throws {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if await condition() { return }
        try await Task.sleep(nanoseconds: 100_000_000)
    }
    XCTFail("condition not met within \(seconds) s")
}
