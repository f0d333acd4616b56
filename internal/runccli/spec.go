package runccli

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/spf13/cobra"

	"github.com/berth-project/berth/runtime/profile"
)

func specVersion() string { return specs.Version }

func specCmd() *cobra.Command {
	var bundle string
	var rootless bool
	cmd := &cobra.Command{
		Use:   "spec [flags]",
		Short: "create a new specification file (config.json)",
		Args:  requireArgs(0, 0),
		RunE: func(cmd *cobra.Command, args []string) error {
			s := profile.Default()
			if rootless {
				profile.Rootless(s, uint32(os.Geteuid()), uint32(os.Getegid()))
			}
			path := filepath.Join(bundle, "config.json")
			if _, err := os.Stat(path); err == nil {
				return fmt.Errorf("file %s exists: remove it first", path)
			} else if !errors.Is(err, os.ErrNotExist) {
				return err
			}
			data, err := json.MarshalIndent(s, "", "\t")
			if err != nil {
				return err
			}
			return os.WriteFile(path, append(data, '\n'), 0o666)
		},
	}
	cmd.Flags().StringVarP(&bundle, "bundle", "b", "", "path to the root of the bundle directory")
	cmd.Flags().BoolVar(&rootless, "rootless", false, "generate a configuration for a rootless container")
	return cmd
}

func featuresCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "features",
		Short: "show the enabled features",
		Args:  requireArgs(0, 0),
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := json.MarshalIndent(profile.Features(Version), "", "    ")
			if err != nil {
				return err
			}
			fmt.Printf("%s\n", data)
			return nil
		},
	}
}
