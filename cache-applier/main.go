// Command cache-applier consumes the standby log and refreshes or evicts
// the Redis keys each changed row maps to (package cacheapply).
package main

import "github.com/lockstep-dr/lockstep/cache-applier/cacheapply"

func main() { cacheapply.Main(nil) }
