# SPDX-License-Identifier: Apache-2.0
"""What the Python helpers (the chaos suite, the benchmarks) know of swiftpath's store and datapath
ABI, in one place. IntegrationTests' CrossLanguageABITests holds every value here to the C structs
(bpf/abi/include/datapath_abi.h, as Swift imports them), to the Swift constants, and to the paths a
store opened by the Swift code really has: a change on one side alone fails it."""
import socket
import struct

# Paths under a store's root in bpffs.
STORE_PATHS = {
    "endpoint_records": "endpoints_v1",
    "leases": "ip_leases_v1",
    "service_records": "services_v1",
    "agent": "agent",
    "datapath": "datapath",
    "services": "datapath/sp_services",
    "slots": "datapath/sp_slots",
    "endpoints4": "datapath/sp_endpoints4",
    "endpoints6": "datapath/sp_endpoints6",
    "uplinks": "datapath/sp_uplinks",
    "cluster4": "datapath/sp_cluster4",
    "pod_devices": "datapath/sp_pod_devices",
}

# The device group DEL moves a retired veth into (RetiredVeths.deviceGroup).
RETIRED_GROUP = 0x53505254

# Sizes and field offsets of the structs the helpers pack and read.
LAYOUTS = {
    "sp_service_key": {"size": 20, "addr": 0, "port": 16, "proto": 18, "family": 19},
    "sp_service": {"size": 24, "id": 0, "slots": 4},
    "sp_slot_key": {"size": 8, "id": 0, "slot": 4},
    "sp_backend": {"size": 20, "addr": 0, "port": 16, "family": 18},
}


def service_key(address, port, proto):
    """struct sp_service_key of `address` (text, either family), `port`, `proto` (IPPROTO_*)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    packed = socket.inet_pton(family, address).ljust(16, b"\0")
    layout = LAYOUTS["sp_service_key"]
    key = bytearray(layout["size"])
    key[layout["addr"]:layout["addr"] + 16] = packed
    key[layout["port"]:layout["port"] + 2] = struct.pack("!H", port)
    key[layout["proto"]] = proto
    key[layout["family"]] = 6 if family == socket.AF_INET6 else 4
    return bytes(key)


def service_slots(value):
    """The id and live slot count of a struct sp_service."""
    layout = LAYOUTS["sp_service"]
    return struct.unpack_from("=I", value, layout["id"])[0], struct.unpack_from("=I", value, layout["slots"])[0]


def slot_key(service_id, slot):
    layout = LAYOUTS["sp_slot_key"]
    key = bytearray(layout["size"])
    struct.pack_into("=I", key, layout["id"], service_id)
    struct.pack_into("=I", key, layout["slot"], slot)
    return bytes(key)


def backend_address(value):
    """A struct sp_backend's address, as text."""
    layout = LAYOUTS["sp_backend"]
    family = value[layout["family"]]
    raw = value[layout["addr"]:layout["addr"] + 16]
    return socket.inet_ntop(socket.AF_INET6, raw) if family == 6 else socket.inet_ntop(socket.AF_INET, raw[:4])
