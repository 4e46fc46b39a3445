// SPDX-License-Identifier: Apache-2.0
import BPF
import NodeStore
import CNIProtocol
import IPAM

extension Plugin {
    /// STATUS: ready when IPAM can hand out addresses (the node checks before it found a place
    /// for the store); code 50 otherwise. Looks only: it creates nothing.
    func status(_ node: NodeFacts) throws(CNIError) {
        let store: EndpointStore?
        do { store = try existingStore() } catch {
            throw CNIError(.pluginNotAvailable, "the swiftpath store is not available", details: error.description)
        }
        do { try addressManager(node.plan, store: store)?.status() } catch where error.code == .pluginNotAvailable {
            throw error
        } catch {
            throw CNIError(.pluginNotAvailable, "IPAM is not usable", details: error.description)
        }
    }
}
