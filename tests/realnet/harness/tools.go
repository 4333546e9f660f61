//go:build tools

// The real client binaries the tests run, built from the same pinned module (scripts/setup.sh).
package main

import (
	_ "tailscale.com/cmd/tailscale"
	_ "tailscale.com/cmd/tailscaled"
)
