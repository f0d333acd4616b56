// Package nft owns berth's nftables table: it renders a declarative model
// of bridges and published ports into one inet-family table and installs it
// in a single atomic netlink batch (add table and chains, flush the chains,
// add the rules), so the table always holds either the old or the new
// ruleset, and no other table is touched.
//
// The table (family inet) has fixed chains; every rule carries a comment
// naming it, and Apply diffs the wanted rules against the rules in place,
// so a change adds or deletes only what differs (deletions are slow in
// the kernel: each waits for an RCU grace period):
//
//	prerouting  (nat, dstnat)   fib daddr type local -> jump ports
//	output      (nat, dstnat)   fib daddr type local -> jump ports
//	ports                       one DNAT rule per published port
//	postrouting (nat, srcnat)   per bridge: saddr 127/8 out bridge -> masquerade (localhost publish)
//	                            per subnet: dnat'ed, from own subnet, out own bridge -> masquerade (hairpin)
//	                            per subnet of an external bridge: out elsewhere -> masquerade
//	forward     (filter, 0)     jump fwd-intra (accept within a bridge), jump fwd-internal (drop
//	                            in/out of internal bridges), accept established/related and
//	                            dnat'ed, jump fwd-isolate (drop bridge-to-other-bridge)
//
// Each regular chain holds rules of a single verdict, so their order does
// not matter and they can be added and deleted one at a time.
//
// Publishing on 127.0.0.1 works without a userland proxy because the
// caller sets route_localnet=1 on every bridge: the output-hook DNAT keeps the
// 127.0.0.1 source, route_localnet lets the kernel route it out of the bridge,
// and the postrouting masquerade rewrites it to the bridge address so the
// container's reply comes back through conntrack.
//
// This package imports no other berth package.
package nft
