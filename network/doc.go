// Package network owns berth's container networking: bridge networks, their
// persisted state (networks, address allocations, endpoints), network
// namespaces pinned for containers ("sandboxes"), veth plumbing, published
// ports and NAT (through package nft), and the state the embedded DNS
// server (package dns) serves.
//
// It is a library used by the engine; it never imports the engine, the
// runtime, image or storage packages. Values cross the boundary as plain
// data: the engine asks for a sandbox, gets a path to a pinned network
// namespace, puts it in the OCI spec, and attaches the sandbox to networks
// before or after the container's process starts.
//
// Concurrency and crashes. berth has no daemon, so many berth processes may
// use the same root at once. Every mutating operation takes an exclusive
// flock on root/network/lock, opens the bbolt database, does its kernel work
// inside one bbolt write transaction and commits last. A process killed at
// any point therefore leaves the database as it was before the operation.
// The kernel objects it may have created are named after this root: every
// link but the default bridge is called "berth"+tag+... (tag: 4 hex digits
// chosen at init so no existing link uses it; veths berth<tag><6 hex>,
// user bridges berth<tag>-<5 hex of the network id>), so Reconcile deletes
// the ones no record owns without touching other roots' links, recreates
// missing bridges and veths, and brings the nftables table back in line
// with the database. Reads (List, Inspect) take the same lock briefly.
//
// Speed. One netlink handle per operation (plus one inside the sandbox),
// no exec. nftables rules are diffed, not rebuilt (see package nft): adding
// a container adds only its port rules. The kernel makes every nftables
// deletion and every veth deletion wait for an RCU grace period (10-30 ms
// here), so Detach deletes its veth after releasing the lock, and
// RemoveSandbox does not delete veths at all: unpinning the namespace lets
// the kernel destroy it, and its veths with it, asynchronously.
//
// Sandboxes are created on a locked OS thread that unshares CLONE_NEWNET,
// bind-mounts /proc/self/task/<tid>/ns/net onto runDir/netns/berth-<id>, then
// switches back to its original namespace; if switching back fails the thread
// is left locked so the Go runtime throws it away.
//
// Published ports are pure nftables DNAT (no userland proxy): from other
// hosts and from containers (prerouting), and from the host itself including
// 127.0.0.1 (output hook; route_localnet=1 on each bridge plus a masquerade of
// 127.0.0.0/8 leaving the bridge). Since no process holds the host port, a
// port is checked free by binding it just before the rules are installed.
// Publishing on ::1 is not supported (the kernel has no route_localnet for
// IPv6).
//
// The host must forward packets: attaching to a non-internal network sets
// net.ipv4.ip_forward=1 (and net.ipv6.conf.all.forwarding=1 for IPv6
// networks), as Docker does.
//
// Embedded DNS: berth has no daemon, so one small process per run directory
// serves all user-defined networks (RunDNS). It listens on each user
// network's gateway address, port 53, reads the records from a JSON snapshot
// (root/network/dns.json) that every mutating operation rewrites atomically,
// reloads when told over runDir/dns.sock (Attach and Detach tell it) or when
// the snapshot changes, and exits when no endpoint is left on a user network.
// The engine starts it on demand through Options.StartDNS, as a detached
// process.
package network
