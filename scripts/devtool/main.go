// Command devtool holds the demo's helpers: a write workload on the primary,
// the consistency report and the two-site dev stack's WAN link. Development
// only; not one of the services.
package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/lockstep-dr/lockstep/internal/config"
)

func main() {
	var file string
	var sets []string
	load := func() (*config.Config, error) { return config.Load(file, sets) }
	root := &cobra.Command{Use: "devtool", Short: "lockstep demo helpers", SilenceUsage: true}
	root.PersistentFlags().StringVarP(&file, "config", "c", os.Getenv("LOCKSTEP_CONFIG"), "YAML config file")
	root.PersistentFlags().StringArrayVar(&sets, "set", nil, "override a config key")
	root.AddCommand(workloadCmd(load), reportCmd(load), wanCmd())
	if err := root.Execute(); err != nil {
		os.Exit(1)
	}
}
