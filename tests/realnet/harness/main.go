// Command realnet-control is the coordination server real tailscaled nodes talk to in
// tests/realnet: Tailscale's own test control server (tstest/integration/testcontrol), with a
// DERP relay and a STUN server, all on 127.0.0.1, and two things testcontrol lacks that
// tailnet-lock stories need:
//
//   - /machine/tka/sync/send, which `tailscale lock add|remove` and `revoke-keys --finish`
//     use to transmit updates;
//   - keeping the node-key signature a node sends when it registers (a node enrolled with a
//     wrapped pre-approved auth key signs its own node key), as Tailscale's service does.
//
// Both arrive inside the Noise channel, which testcontrol serves with a private mux, so the
// harness terminates Noise itself (its own machine key, served on /key) and hands each inner
// request to testcontrol's handlers (see noise.go). An admin API on a second loopback port
// lets tests read nodes and the authority and act as the service would (admin.go).
//
// tailscale.com is pinned at v1.102.5, not the v1.104.5 of tests/interop: tailscaled of the
// v1.104 line needs a gvisor revision the module proxy here does not serve. Between the two,
// the tka package differs only in which ancestors a sync offer lists.
//
// On start it prints one JSON line: {"control_url": …, "admin_url": …}.
package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"flag"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"tailscale.com/derp/derpserver"
	"tailscale.com/net/stunserver"
	"tailscale.com/tailcfg"
	"tailscale.com/tstest/integration/testcontrol"
	"tailscale.com/types/key"
)

const loopback = "127.0.0.1"

func main() {
	requireAuthKey := flag.String("require-auth-key", "", "auth key every node must present")
	verbose := flag.Bool("v", false, "log every control request")
	stdinEOF := flag.Bool("exit-on-stdin-eof", false,
		"exit when stdin reaches end of file (the test harness holds it open, so the server "+
			"cannot outlive a test driver that was killed)")
	flag.Parse()
	log.SetFlags(log.Lmicroseconds)
	log.SetOutput(os.Stderr)

	derpMap := startRelay()
	control := &testcontrol.Server{
		DERPMap:          derpMap,
		RequireAuthKey:   *requireAuthKey,
		AllNodesSameUser: true,
		AllOnline:        true,
		Verbose:          *verbose,
		// Tailscale's service grants this to tailnets whose plan includes tailnet lock; the
		// client refuses `tailscale lock init` without it.
		DefaultNodeCapabilities: &tailcfg.NodeCapMap{tailcfg.CapabilityTailnetLock: nil},
	}
	front := newNoiseFront(control)

	controlLn, err := net.Listen("tcp", net.JoinHostPort(loopback, "0"))
	check(err, "control listener")
	control.ExplicitBaseURL = "http://" + controlLn.Addr().String()
	adminLn, err := net.Listen("tcp", net.JoinHostPort(loopback, "0"))
	check(err, "admin listener")

	go serve(controlLn, front)
	go serve(adminLn, newAdmin(control, front))

	ready, err := json.Marshal(map[string]string{
		"control_url": control.ExplicitBaseURL,
		"admin_url":   "http://" + adminLn.Addr().String(),
	})
	check(err, "ready line")
	os.Stdout.Write(append(ready, '\n'))

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if *stdinEOF {
		go func() {
			io.Copy(io.Discard, os.Stdin)
			stop()
		}()
	}
	<-ctx.Done()
}

func serve(ln net.Listener, h http.Handler) {
	srv := &http.Server{Handler: h, ErrorLog: log.Default()}
	if err := srv.Serve(ln); err != nil {
		log.Fatalf("serve %v: %v", ln.Addr(), err)
	}
}

// startRelay runs a DERP relay (TLS with a test certificate, which DERP nodes marked
// InsecureForTests accept) and a STUN server on loopback, so no node ever looks beyond it.
func startRelay() *tailcfg.DERPMap {
	d := derpserver.New(key.NewNode(), log.Printf)
	derpLn, err := net.Listen("tcp", net.JoinHostPort(loopback, "0"))
	check(err, "derp listener")
	httpsrv := httptest.NewUnstartedServer(derpserver.Handler(d))
	httpsrv.Listener.Close()
	httpsrv.Listener = derpLn
	httpsrv.Config.TLSNextProto = make(map[string]func(*http.Server, *tls.Conn, http.Handler))
	httpsrv.StartTLS()

	stun := stunserver.New(context.Background())
	check(stun.Listen(net.JoinHostPort(loopback, "0")), "stun listener")
	go func() {
		if err := stun.Serve(); err != nil {
			log.Printf("stun: %v", err)
		}
	}()
	_, stunPort, err := net.SplitHostPort(stun.LocalAddr().String())
	check(err, "stun port")
	port, err := strconv.Atoi(stunPort)
	check(err, "stun port")

	return &tailcfg.DERPMap{Regions: map[int]*tailcfg.DERPRegion{
		1: {RegionID: 1, RegionCode: "realnet", Nodes: []*tailcfg.DERPNode{{
			Name:             "r1",
			RegionID:         1,
			HostName:         loopback,
			IPv4:             loopback,
			IPv6:             "none",
			STUNPort:         port,
			DERPPort:         derpLn.Addr().(*net.TCPAddr).Port,
			InsecureForTests: true,
			STUNTestIP:       loopback,
		}}},
	}}
}

func check(err error, what string) {
	if err != nil {
		log.Fatalf("realnet-control: %s: %v", what, err)
	}
}
