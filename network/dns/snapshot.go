// Package dns is berth's embedded DNS server for user-defined networks.
//
// One server process runs per berth run directory (berth has no daemon). It
// listens on each user network's gateway address, port 53 (UDP and TCP; the
// sockets use IP_FREEBIND so they can be bound before the bridge has the
// address), and answers A, AAAA and PTR queries for the container names,
// aliases and short ids of the network the query arrived on. Other names are
// forwarded to the querying container's own --dns servers, or else to the
// host's resolvers (the server runs in the host's network namespace, so a
// 127.0.0.53 stub resolver works). Internal networks get no forwarding.
//
// Messages are read and built with golang.org/x/net/dns/dnsmessage (a
// small package, cheap to initialise in every berth process). Forwarding
// relays bytes: the upstream gets the client's query as it was sent (EDNS0
// OPT record included) and the client gets the upstream's reply as it was
// sent; a UDP reply with the TC bit is retried over TCP and used if it fits
// the client's UDP payload size. Queries that are not well-formed get
// FORMERR (NOTIMP for opcodes other than QUERY and NOTIFY); datagrams
// without a header, and responses, get nothing.
//
// The records come from a JSON Snapshot file that package network rewrites
// atomically after every change; the server reloads it when told over its
// control socket (Notify) and when the file changes. The server exits after
// a grace period during which no endpoint is left on any user network.
//
// This package imports no other berth package.
package dns

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/berth-project/berth/internal/atomicfile"
)

// Snapshot is everything the DNS server serves.
type Snapshot struct {
	Networks []Network `json:"networks"`
}

// Network is one user-defined network.
type Network struct {
	ID       string   `json:"id"`
	Name     string   `json:"name"`
	Gateway4 string   `json:"gateway4,omitempty"`
	Gateway6 string   `json:"gateway6,omitempty"`
	Internal bool     `json:"internal,omitempty"`
	Records  []Record `json:"records,omitempty"`
}

// Record is one container endpoint on a network.
type Record struct {
	Names     []string `json:"names"` // container name, aliases, short id
	IP4       string   `json:"ip4,omitempty"`
	IP6       string   `json:"ip6,omitempty"`
	Upstreams []string `json:"upstreams,omitempty"` // the container's --dns servers
}

// Endpoints counts the records of all networks.
func (s *Snapshot) Endpoints() int {
	n := 0
	for _, nw := range s.Networks {
		n += len(nw.Records)
	}
	return n
}

// WriteSnapshot replaces the file at path atomically.
func WriteSnapshot(path string, s *Snapshot) error {
	data, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("encode dns snapshot: %w", err)
	}
	if err := atomicfile.WriteFile(path, data, 0o600, false); err != nil {
		return fmt.Errorf("write dns snapshot: %w", err)
	}
	return nil
}

// ReadSnapshot reads the file at path; a missing file is an empty snapshot.
func ReadSnapshot(path string) (*Snapshot, error) {
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return &Snapshot{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read dns snapshot: %w", err)
	}
	s := &Snapshot{}
	if err := json.Unmarshal(data, s); err != nil {
		return nil, fmt.Errorf("decode dns snapshot %s: %w", path, err)
	}
	return s, nil
}
