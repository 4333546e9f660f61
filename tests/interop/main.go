// Command tka-interop is the interop oracle: it answers questions about Tailscale's reference
// implementation (tailscale.com/tka) for the Python test-suite. It reads one JSON request per line
// on stdin and writes one JSON response per line on stdout, so a single process serves a whole
// pytest session. Only the public API of tailscale.com/tka and tailscale.com/types/key is used.
//
// Request:  {"op": "<name>", ...fields}
// Response: {"ok": true, ...fields} or {"ok": false, "error": "<text>"}.
// An "ok" response can still carry a reference-side verdict such as "decode_error"; "ok": false
// means the request itself was malformed (a bug in the test, not a verdict).
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"runtime/debug"
)

type response map[string]any

// opError marks a malformed request (as opposed to a verdict of the reference).
type opError struct{ msg string }

func (e opError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return opError{fmt.Sprintf(format, args...)}
}

func main() {
	in := bufio.NewReaderSize(os.Stdin, 1<<20)
	out := bufio.NewWriterSize(os.Stdout, 1<<20)
	enc := json.NewEncoder(out)
	enc.SetEscapeHTML(false)
	srv := newServer()
	for {
		line, err := in.ReadBytes('\n')
		if len(line) > 0 {
			resp := srv.handle(line)
			if err := enc.Encode(resp); err != nil {
				fmt.Fprintf(os.Stderr, "tka-interop: encoding response: %v\n", err)
				os.Exit(1)
			}
			if err := out.Flush(); err != nil {
				os.Exit(1)
			}
		}
		if err != nil {
			return
		}
	}
}

func (s *server) handle(line []byte) (resp response) {
	defer func() {
		if r := recover(); r != nil {
			resp = response{"ok": false, "error": fmt.Sprintf("panic: %v\n%s", r, debug.Stack())}
		}
	}()
	var r request
	if err := json.Unmarshal(line, &r); err != nil {
		return response{"ok": false, "error": "bad request JSON: " + err.Error()}
	}
	fn, ok := ops[r.Op]
	if !ok {
		return response{"ok": false, "error": "unknown op: " + r.Op}
	}
	res, err := fn(s, &r)
	if err != nil {
		return response{"ok": false, "error": err.Error()}
	}
	if res == nil {
		res = response{}
	}
	res["ok"] = true
	return res
}

// moduleVersion reports which tailscale.com version was linked in.
func moduleVersion() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	for _, m := range info.Deps {
		if m.Path == "tailscale.com" {
			return m.Version
		}
	}
	return "unknown"
}
