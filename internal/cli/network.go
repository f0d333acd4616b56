package cli

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/berth-project/berth/network"
)

func networkCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "network", Short: "Manage networks"}
	var subnet, gateway, ipRange, driver, subnet6, gateway6 string
	var internal, ipv6 bool
	var labels, opts []string
	create := &cobra.Command{
		Use:   "create [OPTIONS] NETWORK",
		Short: "Create a network",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if driver != "bridge" {
				return exitCode(125, fmt.Errorf("network driver %q is not supported: berth has bridge networks", driver))
			}
			m, err := g.networks(cmd)
			if err != nil {
				return err
			}
			cfg := network.NetworkConfig{Name: args[0], Subnet: subnet, Gateway: gateway, IPRange: ipRange, Internal: internal,
				IPv6: ipv6, SubnetV6: subnet6, GatewayV6: gateway6, Labels: kvMap(labels), Options: optMap(opts)}
			res, err := m.Create(cfg)
			if err != nil {
				return err
			}
			fmt.Println(res.ID)
			return nil
		},
	}
	fl := create.Flags()
	fl.StringVarP(&driver, "driver", "d", "bridge", "Driver to manage the Network")
	fl.StringVar(&subnet, "subnet", "", "Subnet in CIDR format that represents a network segment")
	fl.StringVar(&gateway, "gateway", "", "IPv4 Gateway for the master subnet")
	fl.StringVar(&ipRange, "ip-range", "", "Allocate container ip from a sub-range")
	fl.StringVar(&subnet6, "subnet-v6", "", "IPv6 subnet (also accepted as a second --subnet)")
	fl.StringVar(&gateway6, "gateway-v6", "", "IPv6 gateway")
	fl.BoolVar(&internal, "internal", false, "Restrict external access to the network")
	fl.BoolVar(&ipv6, "ipv6", false, "Enable or disable IPv6 networking")
	fl.StringArrayVar(&labels, "label", nil, "Set metadata on a network")
	fl.StringArrayVarP(&opts, "opt", "o", nil, "Set driver specific options")
	create.PreRunE = func(cmd *cobra.Command, args []string) error {
		// Docker takes the IPv6 subnet as a second --subnet.
		if strings.Contains(subnet, ":") {
			subnet, subnet6 = "", subnet
		}
		return nil
	}
	var quiet bool
	var format string
	ls := &cobra.Command{
		Use:     "ls [OPTIONS]",
		Aliases: []string{"list"},
		Short:   "List networks",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := g.networks(cmd)
			if err != nil {
				return err
			}
			nets, err := m.List()
			if err != nil {
				return err
			}
			type row struct{ ID, Name, Driver, Scope, Internal, IPv6 string }
			var rows []any
			for _, n := range nets {
				id := n.ID
				if len(id) > 12 {
					id = id[:12]
				}
				if quiet {
					fmt.Println(id)
					continue
				}
				rows = append(rows, row{ID: id, Name: n.Name, Driver: n.Driver, Scope: n.Scope, Internal: fmt.Sprint(n.Internal), IPv6: fmt.Sprint(n.EnableIPv6)})
			}
			if quiet {
				return nil
			}
			return render(os.Stdout, format, rows, map[string]string{"ID": "NETWORK ID"}, "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}")
		},
	}
	ls.Flags().BoolVarP(&quiet, "quiet", "q", false, "Only display network IDs")
	ls.Flags().StringVar(&format, "format", "", "Format output using a custom template")
	var iformat string
	inspect := &cobra.Command{
		Use:   "inspect [OPTIONS] NETWORK [NETWORK...]",
		Short: "Display detailed information on one or more networks",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := g.networks(cmd)
			if err != nil {
				return err
			}
			var out []any
			failed := false
			for _, a := range args {
				res, err := m.Inspect(a)
				if err != nil {
					fmt.Fprintln(os.Stderr, "Error: No such network:", a)
					failed = true
					continue
				}
				out = append(out, res)
			}
			if iformat != "" {
				err = render(os.Stdout, iformat, out, nil, "")
			} else {
				if out == nil {
					out = []any{}
				}
				err = writeJSON(os.Stdout, out)
			}
			if failed {
				return exitCode(1, nil)
			}
			return err
		},
	}
	inspect.Flags().StringVarP(&iformat, "format", "f", "", "Format output using a custom template")
	rm := &cobra.Command{
		Use:     "rm NETWORK [NETWORK...]",
		Aliases: []string{"remove"},
		Short:   "Remove one or more networks",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := g.networks(cmd)
			if err != nil {
				return err
			}
			return forEach(args, m.Remove)
		},
	}
	var aliases []string
	var ip string
	connect := &cobra.Command{
		Use:   "connect [OPTIONS] NETWORK CONTAINER",
		Short: "Connect a container to a network",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := g.engine()
			if err != nil {
				return err
			}
			return e.Connect(cmd.Context(), args[0], args[1], aliases, ip)
		},
	}
	connect.Flags().StringArrayVar(&aliases, "alias", nil, "Add network-scoped alias for the container")
	connect.Flags().StringVar(&ip, "ip", "", "IPv4 address")
	disconnect := &cobra.Command{
		Use:   "disconnect [OPTIONS] NETWORK CONTAINER",
		Short: "Disconnect a container from a network",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := g.engine()
			if err != nil {
				return err
			}
			return e.Disconnect(cmd.Context(), args[0], args[1])
		},
	}
	disconnect.Flags().BoolP("force", "f", false, "Force the container to disconnect from a network")
	prune := pruneCmd("Remove all unused networks", func(cmd *cobra.Command) error {
		m, err := g.networks(cmd)
		if err != nil {
			return err
		}
		removed, err := m.Prune()
		if err != nil {
			return err
		}
		if len(removed) > 0 {
			fmt.Println("Deleted Networks:")
			for _, n := range removed {
				fmt.Println(n)
			}
		}
		return nil
	})
	c.AddCommand(create, ls, inspect, rm, connect, disconnect, prune)
	return c
}

// networks opens the network manager and reconciles the host with its
// state (bridges and rules recreated after a reboot, orphans removed).
func (g *globals) networks(cmd *cobra.Command) (*network.Manager, error) {
	e, err := g.engine()
	if err != nil {
		return nil, err
	}
	m, err := e.Network()
	if err != nil {
		return nil, err
	}
	if err := m.Reconcile(cmd.Context()); err != nil {
		return nil, fmt.Errorf("reconcile networks: %w", err)
	}
	return m, nil
}
