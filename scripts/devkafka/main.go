// Command devkafka runs franz-go's kfake as a standalone single-broker Kafka
// for development and CI: a real Kafka wire protocol on 127.0.0.1, with its
// data folder so records, topics and group offsets survive a restart.
// Stop it with SIGTERM: an unclean stop can orphan open transactions.
package main

import (
	"flag"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/twmb/franz-go/pkg/kfake"
)

func main() {
	port := flag.Int("port", 9092, "port to listen on (127.0.0.1)")
	data := flag.String("data", "", "data folder; empty keeps everything in memory")
	flag.Parse()

	opts := []kfake.Opt{
		kfake.Ports(*port),
		kfake.DefaultNumPartitions(1),
		// 64 MiB so a 16 MiB row fits in one batch with room to spare.
		kfake.BrokerConfigs(map[string]string{"message.max.bytes": "67108864"}),
	}
	if *data != "" {
		opts = append(opts, kfake.DataDir(*data))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		slog.Error("start kfake", "port", *port, "err", err)
		os.Exit(1)
	}
	slog.Info("kafka broker listening", "addrs", strings.Join(c.ListenAddrs(), ","), "data", *data)

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	s := <-sig
	slog.Info("stopping kafka broker", "signal", s.String())
	c.Close()
}
