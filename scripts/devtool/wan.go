package main

import (
	"fmt"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/lockstep-dr/lockstep/internal/wan"
)

// wanCmd runs one WAN link of the two-site dev stack until it is stopped:
// clients connect to --listen, which forwards to --to across a simulated
// WAN of the shape given.
func wanCmd() *cobra.Command {
	var listen, to, shape string
	cmd := &cobra.Command{
		Use:   "wan",
		Short: "Forward --listen to --to across a simulated WAN (toxiproxy) until stopped",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			sh, err := wan.Parse(shape)
			if err != nil {
				return err
			}
			link, err := wan.NewLink("dev", listen, to)
			if err != nil {
				return err
			}
			defer link.Close()
			if err := link.Set(sh); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "WAN link %s -> %s: %s\n", link.Addr, to, sh)
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			<-ctx.Done()
			return nil
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:3317", "where clients connect")
	cmd.Flags().StringVar(&to, "to", "127.0.0.1:3307", "the server across the WAN")
	cmd.Flags().StringVar(&shape, "shape", "50ms", "round trip time[,jitter=D][,rate=10MB]")
	return cmd
}
