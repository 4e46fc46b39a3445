// SPDX-License-Identifier: Apache-2.0

// Command gocni runs a network's plugins the way containerd's CRI plugin does: through
// containerd's own go-cni (and the libcni under it), with the capability arguments and labels
// containerd passes for a Kubernetes pod, so that the plugins see containerd's exact bytes.
//
//	gocni setup|remove CONF_DIR BIN_DIR SANDBOX_ID NETNS_PATH
//
// setup prints go-cni's result as JSON; either exits 1 with the error.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	gocni "github.com/containerd/go-cni"
)

func main() {
	if len(os.Args) != 6 {
		fail(fmt.Errorf("usage: gocni setup|remove CONF_DIR BIN_DIR SANDBOX_ID NETNS_PATH"))
	}
	verb, confDir, binDir, id, netns := os.Args[1], os.Args[2], os.Args[3], os.Args[4], os.Args[5]
	network, err := gocni.New(gocni.WithPluginConfDir(confDir), gocni.WithPluginDir([]string{binDir}), gocni.WithMinNetworkCount(1))
	if err != nil {
		fail(err)
	}
	if err := network.Load(gocni.WithDefaultConf); err != nil {
		fail(err)
	}
	// What containerd's CRI plugin passes for a pod with a hostPort, bandwidth annotations and an
	// IP range: each struct is go-cni's own, marshalled without JSON tags ("HostPort", ...).
	options := []gocni.NamespaceOpts{
		gocni.WithLabels(map[string]string{
			"IgnoreUnknown": "1", "K8S_POD_NAMESPACE": "default", "K8S_POD_NAME": "gocni-" + id,
			"K8S_POD_INFRA_CONTAINER_ID": id, "K8S_POD_UID": "uid-" + id,
		}),
		gocni.WithCapabilityPortMap([]gocni.PortMapping{
			{HostPort: 31080, ContainerPort: 8080, Protocol: "tcp", HostIP: ""},
			{HostPort: 31053, ContainerPort: 8080, Protocol: "udp", HostIP: ""},
		}),
		gocni.WithCapabilityBandWidth(gocni.BandWidth{IngressRate: 1_000_000, IngressBurst: 100_000, EgressRate: 1_000_000, EgressBurst: 100_000}),
		gocni.WithCapabilityIPRanges([]gocni.IPRanges{{Subnet: "10.31.1.0/24"}}),
	}
	switch verb {
	case "setup":
		result, err := network.Setup(context.Background(), id, netns, options...)
		if err != nil {
			fail(err)
		}
		encoded, err := json.Marshal(result)
		if err != nil {
			fail(err)
		}
		fmt.Println(string(encoded))
	case "remove":
		if err := network.Remove(context.Background(), id, netns, options...); err != nil {
			fail(err)
		}
	default:
		fail(fmt.Errorf("unknown verb %q", verb))
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}
