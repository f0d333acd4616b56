package network

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"time"

	bolt "go.etcd.io/bbolt"
)

var (
	bucketMeta      = []byte("meta")
	bucketNetworks  = []byte("networks")
	bucketEndpoints = []byte("endpoints")
	keyTag          = []byte("tag")
)

// netRecord is a network as stored.
type netRecord struct {
	ID        string            `json:"id"`
	Name      string            `json:"name"`
	Driver    string            `json:"driver"` // bridge, host, null
	Bridge    string            `json:"bridge,omitempty"`
	Default   bool              `json:"default,omitempty"`
	Created   time.Time         `json:"created"`
	Subnet4   netip.Prefix      `json:"subnet4,omitzero"`
	Gateway4  netip.Addr        `json:"gateway4,omitzero"`
	Range4    netip.Prefix      `json:"range4,omitzero"`
	Subnet6   netip.Prefix      `json:"subnet6,omitzero"`
	Gateway6  netip.Addr        `json:"gateway6,omitzero"`
	Internal  bool              `json:"internal,omitempty"`
	IPv6      bool              `json:"ipv6,omitempty"`
	Labels    map[string]string `json:"labels,omitempty"`
	Options   map[string]string `json:"options,omitempty"`
	Cursor4   netip.Addr        `json:"cursor4,omitzero"`
	Cursor6   netip.Addr        `json:"cursor6,omitzero"`
	BridgeMAC string            `json:"bridge_mac,omitempty"`
}

// epRecord is an endpoint as stored.
type epRecord struct {
	ID          string        `json:"id"`
	NetworkID   string        `json:"network_id"`
	ContainerID string        `json:"container_id"`
	Name        string        `json:"name,omitempty"`
	Aliases     []string      `json:"aliases,omitempty"`
	Sandbox     string        `json:"sandbox"`
	IfName      string        `json:"ifname"`
	HostIf      string        `json:"host_if"`
	MAC         string        `json:"mac"`
	IP4         netip.Addr    `json:"ip4,omitzero"`
	IP6         netip.Addr    `json:"ip6,omitzero"`
	Ports       []PortMapping `json:"ports,omitempty"`
	DNS         []string      `json:"dns,omitempty"`
	Created     time.Time     `json:"created"`
}

func epKey(networkID, containerID string) []byte {
	return []byte(networkID + "/" + containerID)
}

// state is the whole database loaded in memory; small enough (a record per
// network and endpoint) that every operation reads it all.
type state struct {
	networks  []*netRecord
	endpoints []*epRecord
	tag       string
	// after holds kernel work that needs no lock (slow veth deletions),
	// run by update once the transaction committed and the lock is free.
	after []func() error
	// bridgeCreated is set when the operation had to create a bridge.
	bridgeCreated bool
	// dnsDirty is set when user-network records changed.
	dnsDirty bool
}

func loadState(tx *bolt.Tx) (*state, error) {
	st := &state{}
	if b := tx.Bucket(bucketMeta); b != nil {
		st.tag = string(b.Get(keyTag))
	}
	if b := tx.Bucket(bucketNetworks); b != nil {
		err := b.ForEach(func(k, v []byte) error {
			n := &netRecord{}
			if err := json.Unmarshal(v, n); err != nil {
				return fmt.Errorf("decode network %s: %w", k, err)
			}
			st.networks = append(st.networks, n)
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	if b := tx.Bucket(bucketEndpoints); b != nil {
		err := b.ForEach(func(k, v []byte) error {
			e := &epRecord{}
			if err := json.Unmarshal(v, e); err != nil {
				return fmt.Errorf("decode endpoint %s: %w", k, err)
			}
			st.endpoints = append(st.endpoints, e)
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return st, nil
}

func putJSON(tx *bolt.Tx, bucket, key []byte, v any) error {
	b, err := tx.CreateBucketIfNotExists(bucket)
	if err != nil {
		return fmt.Errorf("bucket %s: %w", bucket, err)
	}
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put(key, data)
}

func putNetwork(tx *bolt.Tx, n *netRecord) error {
	return putJSON(tx, bucketNetworks, []byte(n.ID), n)
}

func putEndpoint(tx *bolt.Tx, e *epRecord) error {
	return putJSON(tx, bucketEndpoints, epKey(e.NetworkID, e.ContainerID), e)
}

func deleteEndpoint(tx *bolt.Tx, e *epRecord) error {
	b := tx.Bucket(bucketEndpoints)
	if b == nil {
		return nil
	}
	return b.Delete(epKey(e.NetworkID, e.ContainerID))
}

func deleteNetwork(tx *bolt.Tx, id string) error {
	b := tx.Bucket(bucketNetworks)
	if b == nil {
		return nil
	}
	return b.Delete([]byte(id))
}

// network finds a network by exact name, exact ID or unique ID prefix.
func (st *state) network(ref string) (*netRecord, error) {
	if ref == "" {
		return nil, fmt.Errorf("network name is empty: %w", ErrInvalid)
	}
	for _, n := range st.networks {
		if n.Name == ref || n.ID == ref {
			return n, nil
		}
	}
	var found *netRecord
	for _, n := range st.networks {
		if len(ref) >= 1 && len(n.ID) >= len(ref) && n.ID[:len(ref)] == ref {
			if found != nil {
				return nil, fmt.Errorf("network %q: ambiguous id prefix: %w", ref, ErrInvalid)
			}
			found = n
		}
	}
	if found == nil {
		return nil, fmt.Errorf("network %q: %w", ref, ErrNotFound)
	}
	return found, nil
}

func (st *state) networkByID(id string) *netRecord {
	for _, n := range st.networks {
		if n.ID == id {
			return n
		}
	}
	return nil
}

func (st *state) endpointsOf(networkID string) []*epRecord {
	var out []*epRecord
	for _, e := range st.endpoints {
		if e.NetworkID == networkID {
			out = append(out, e)
		}
	}
	return out
}

func (st *state) endpoint(networkID, containerID string) *epRecord {
	for _, e := range st.endpoints {
		if e.NetworkID == networkID && e.ContainerID == containerID {
			return e
		}
	}
	return nil
}

func (st *state) removeEndpoint(e *epRecord) {
	for i, x := range st.endpoints {
		if x == e {
			st.endpoints = append(st.endpoints[:i], st.endpoints[i+1:]...)
			return
		}
	}
}
