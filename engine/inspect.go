package engine

import (
	"net"
	"net/netip"

	mnet "github.com/moby/moby/api/types/network"
	"path/filepath"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
)

func dockerTime(t time.Time) string {
	if t.IsZero() {
		return "0001-01-01T00:00:00Z"
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// publicStatus maps berth's internal states to Docker's.
func publicStatus(s string) container.ContainerState {
	if s == "starting" {
		return container.StateCreated
	}
	return container.ContainerState(s)
}

// Inspect returns a container in Docker's inspect shape.
func (e *Engine) Inspect(c *Container) *container.InspectResponse {
	st := c.State
	r := &container.InspectResponse{
		ID:      c.ID,
		Created: dockerTime(c.Created),
		Path:    c.Path,
		Args:    c.Args,
		State: &container.State{
			Status:     publicStatus(st.Status),
			Running:    st.Status == "running" || st.Status == "paused",
			Paused:     st.Status == "paused",
			Restarting: st.Status == "restarting",
			OOMKilled:  st.OOMKilled,
			Dead:       st.Status == "dead",
			Pid:        st.Pid,
			ExitCode:   st.ExitCode,
			Error:      st.Error,
			StartedAt:  dockerTime(st.StartedAt),
			FinishedAt: dockerTime(st.FinishedAt),
			Health:     st.Health,
		},
		Image:           c.Image,
		ResolvConfPath:  filepath.Join(e.ctrDir(c.ID), "resolv.conf"),
		HostnamePath:    filepath.Join(e.ctrDir(c.ID), "hostname"),
		HostsPath:       filepath.Join(e.ctrDir(c.ID), "hosts"),
		LogPath:         e.logPath(c.ID),
		Name:            "/" + c.Name,
		RestartCount:    c.RestartCount,
		Driver:          e.snapDriver(),
		Platform:        "linux",
		HostConfig:      c.HostConfig,
		Config:          c.Config,
		Mounts:          mountPoints(c),
		NetworkSettings: &container.NetworkSettings{},
	}
	if r.HostConfig.LogConfig.Type == "" {
		r.HostConfig.LogConfig.Type = "json-file"
	}
	if r.HostConfig.NetworkMode == "" {
		r.HostConfig.NetworkMode = "bridge"
	}
	if n := c.Network; n != nil {
		ns := r.NetworkSettings
		ns.SandboxKey = n.SandboxKey
		ns.Networks = map[string]*mnet.EndpointSettings{}
		for name, ei := range n.Networks {
			es := &mnet.EndpointSettings{NetworkID: ei.NetworkID, EndpointID: ei.EndpointID, IPPrefixLen: ei.PrefixLen,
				GlobalIPv6PrefixLen: ei.PrefixV6, Aliases: ei.Aliases, DNSNames: append([]string{c.Name, ShortID(c.ID)}, ei.Aliases...)}
			es.IPAddress, _ = netip.ParseAddr(ei.IP)
			es.Gateway, _ = netip.ParseAddr(ei.Gateway)
			es.GlobalIPv6Address, _ = netip.ParseAddr(ei.IPv6)
			es.IPv6Gateway, _ = netip.ParseAddr(ei.GatewayV6)
			if hw, err := net.ParseMAC(ei.MAC); err == nil {
				es.MacAddress = mnet.HardwareAddr(hw)
			}
			ns.Networks[name] = es
		}
		ns.Ports = mnet.PortMap{}
		for p, binds := range n.Ports {
			port, err := mnet.ParsePort(p)
			if err != nil {
				continue
			}
			for _, b := range binds {
				host, hp, _ := net.SplitHostPort(b)
				pb := mnet.PortBinding{HostPort: hp}
				pb.HostIP, _ = netip.ParseAddr(host)
				ns.Ports[port] = append(ns.Ports[port], pb)
			}
		}
	}
	return r
}

func (e *Engine) snapDriver() string {
	if d, ok := e.snap.(interface{ Name() string }); ok {
		return d.Name()
	}
	return "overlay2"
}

func mountPoints(c *Container) []container.MountPoint {
	out := []container.MountPoint{}
	for _, m := range c.Mounts {
		mp := container.MountPoint{Type: mount.Type(m.Type), Name: m.Name, Source: m.Source, Destination: m.Destination, RW: m.RW}
		if m.Type == "volume" {
			mp.Driver = "local"
		}
		if !m.RW {
			mp.Mode = "ro"
		}
		out = append(out, mp)
	}
	return out
}

// Usage is the size of the container's writable layer.
func (e *Engine) Usage(c *Container) (int64, error) {
	u, err := e.snap.Usage(c.Snapshot)
	return u.Size, err
}

// Ports lists the container's published ports ("80/tcp" → "0.0.0.0:8080").
// Ports are published by the networking layer once it attaches the
// container to a bridge; without it nothing is published.
func (e *Engine) Ports(c *Container) map[string][]string {
	out := map[string][]string{}
	if c.Network == nil {
		return out
	}
	for p, bs := range c.Network.Ports {
		out[p] = append(out[p], bs...)
	}
	return out
}
