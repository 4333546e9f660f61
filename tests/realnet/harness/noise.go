package main

import (
	"bytes"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"reflect"
	"sync"
	"unsafe"

	"golang.org/x/net/http2"
	"tailscale.com/control/controlhttp/controlhttpserver"
	"tailscale.com/tailcfg"
	"tailscale.com/tka"
	"tailscale.com/tstest/integration/testcontrol"
	"tailscale.com/tstest/tkatest"
	"tailscale.com/types/key"
	"tailscale.com/types/tkatype"
)

// testcontrol's per-request handlers take the peer's machine key as an argument; its own
// Noise listener is the only caller. Linking to them lets the harness terminate Noise itself
// and still have every request served by testcontrol's own code.
//
//go:linkname serveRegister tailscale.com/tstest/integration/testcontrol.(*Server).serveRegister
func serveRegister(s *testcontrol.Server, w http.ResponseWriter, r *http.Request, mkey key.MachinePublic)

//go:linkname serveMap tailscale.com/tstest/integration/testcontrol.(*Server).serveMap
func serveMap(s *testcontrol.Server, w http.ResponseWriter, r *http.Request, mkey key.MachinePublic)

//go:linkname serveSetDNS tailscale.com/tstest/integration/testcontrol.(*Server).serveSetDNS
func serveSetDNS(s *testcontrol.Server, w http.ResponseWriter, r *http.Request, mkey key.MachinePublic)

// The largest request body a node sends (testcontrol's own limit is 1 MiB too).
const maxBody = 1 << 20

type noiseFront struct {
	control *testcontrol.Server
	noise   key.MachinePrivate
	legacy  key.MachinePrivate

	mu         sync.Mutex
	registered map[key.NodePublic]tkatype.MarshaledSignature // what each node sent at register
	tkaMu      sync.Mutex                                    // serializes updates to the authority
}

func newNoiseFront(control *testcontrol.Server) *noiseFront {
	return &noiseFront{
		control:    control,
		noise:      key.NewMachine(),
		legacy:     key.NewMachine(),
		registered: map[key.NodePublic]tkatype.MarshaledSignature{},
	}
}

func (f *noiseFront) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/key":
		f.serveKey(w, r)
	case "/ts2021":
		f.serveNoise(w, r)
	default:
		f.control.ServeHTTP(w, r)
	}
}

// serveKey answers as testcontrol does, with the harness's own Noise key.
func (f *noiseFront) serveKey(w http.ResponseWriter, r *http.Request) {
	if r.FormValue("v") == "" {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, f.legacy.Public().UntypedHexString())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(&tailcfg.OverTLSPublicKeyResponse{
		LegacyPublicKey: f.legacy.Public(),
		PublicKey:       f.noise.Public(),
	})
}

func (f *noiseFront) serveNoise(w http.ResponseWriter, r *http.Request) {
	if r.Method != "POST" && r.Method != "GET" {
		http.Error(w, "POST or GET required", http.StatusBadRequest)
		return
	}
	conn, err := controlhttpserver.AcceptHTTP(r.Context(), w, r, f.noise, nil)
	if err != nil {
		log.Printf("noise: %v", err)
		return
	}
	defer conn.Close()
	peer := conn.Peer()
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { f.serveInner(w, r, peer) })
	var h2 http2.Server
	h2.ServeConn(conn, &http2.ServeConnOpts{Context: r.Context(), BaseConfig: &http.Server{Handler: inner}})
}

func (f *noiseFront) serveInner(w http.ResponseWriter, r *http.Request, mkey key.MachinePublic) {
	switch r.URL.Path {
	case "/machine/register":
		f.register(w, r, mkey)
	case "/machine/map":
		serveMap(f.control, w, r, mkey)
	case "/machine/set-dns":
		serveSetDNS(f.control, w, r, mkey)
	case "/machine/update-health":
		io.Copy(io.Discard, io.LimitReader(r.Body, maxBody))
		w.WriteHeader(http.StatusNoContent)
	case "/machine/tka/sync/send":
		f.syncSend(w, r)
	case "/machine/tka/init/finish":
		// testcontrol stores the genesis and signatures but tells no node: push a netmap,
		// as Tailscale's service does, so every node sees lock enabled.
		f.control.ServeHTTP(w, r)
		f.pushToAll()
	default:
		// /machine/tka/{init,bootstrap,sync/offer,sign}: testcontrol's handlers need no
		// machine key.
		f.control.ServeHTTP(w, r)
	}
}

// register lets testcontrol register the node, then keeps the signature the node sent, as
// the node's KeySignature, the way Tailscale's service keeps it.
func (f *noiseFront) register(w http.ResponseWriter, r *http.Request, mkey key.MachinePublic) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
	if err != nil {
		http.Error(w, "reading register request", http.StatusBadRequest)
		return
	}
	var req tailcfg.RegisterRequest
	if err := json.Unmarshal(body, &req); err != nil {
		http.Error(w, "decoding register request", http.StatusBadRequest)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	serveRegister(f.control, w, r, mkey)
	if len(req.NodeKeySignature) == 0 {
		return
	}
	f.mu.Lock()
	f.registered[req.NodeKey] = append(tkatype.MarshaledSignature(nil), req.NodeKeySignature...)
	f.mu.Unlock()
	if node := f.control.Node(req.NodeKey); node != nil {
		node.KeySignature = req.NodeKeySignature
		f.control.UpdateNode(node)
	}
}

func (f *noiseFront) registeredSignature(k key.NodePublic) tkatype.MarshaledSignature {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.registered[k]
}

// storage is testcontrol's authority storage (a private field, nil until init/begin).
// Reading the interface value through reflect is the one way in; it is set once, at
// init/begin, before any update can arrive.
func (f *noiseFront) storage() tka.CompactableChonk {
	field := reflect.ValueOf(f.control).Elem().FieldByName("tkaStorage")
	value := reflect.NewAt(field.Type(), unsafe.Pointer(field.UnsafeAddr())).Elem().Interface()
	chonk, _ := value.(tka.CompactableChonk)
	return chonk
}

func (f *noiseFront) syncSend(w http.ResponseWriter, r *http.Request) {
	f.tkaMu.Lock()
	defer f.tkaMu.Unlock()
	chonk := f.storage()
	if chonk == nil {
		http.Error(w, "tailnet lock is not enabled", http.StatusBadRequest)
		return
	}
	authority, err := tka.Open(chonk)
	if err != nil {
		http.Error(w, "opening the authority: "+err.Error(), http.StatusInternalServerError)
		return
	}
	r.Body = io.NopCloser(io.LimitReader(r.Body, maxBody))
	if err := tkatest.HandleTKASyncSend(w, r, authority, chonk); err != nil {
		log.Printf("sync/send: %v", err)
		return
	}
	f.pruneForks(chonk)
	f.pushToAll()
}

// commit applies updates as a sync/send would (they must verify against the authority).
func (f *noiseFront) commit(aums []tka.AUM) error {
	f.tkaMu.Lock()
	defer f.tkaMu.Unlock()
	chonk := f.storage()
	if chonk == nil {
		return errNotEnabled
	}
	authority, err := tka.Open(chonk)
	if err != nil {
		return err
	}
	if err := authority.Inform(chonk, aums); err != nil {
		return err
	}
	f.pruneForks(chonk)
	f.pushToAll()
	return nil
}

// pruneForks drops the branches fork choice discarded (a recovery that won leaves the chain
// it replaced as a second head). testcontrol announces the authority's head only while there
// is exactly one, so without this no node would hear of a recovery; Tailscale's service
// announces the chosen head.
func (f *noiseFront) pruneForks(chonk tka.CompactableChonk) {
	heads, err := chonk.Heads()
	if err != nil || len(heads) <= 1 {
		return
	}
	authority, err := tka.Open(chonk)
	if err != nil {
		log.Printf("prune: %v", err)
		return
	}
	active := map[tka.AUMHash]bool{}
	for h, ok := authority.Head(), true; ok; {
		active[h] = true
		aum, err := chonk.AUM(h)
		if err != nil {
			break
		}
		h, ok = aum.Parent()
	}
	var discarded []tka.AUMHash
	for _, head := range heads {
		for aum := head; !active[aum.Hash()]; {
			discarded = append(discarded, aum.Hash())
			parent, ok := aum.Parent()
			if !ok {
				break
			}
			next, err := chonk.AUM(parent)
			if err != nil {
				break
			}
			aum = next
		}
	}
	if err := chonk.PurgeAUMs(discarded); err != nil {
		log.Printf("prune: %v", err)
	}
}

// pushToAll sends every node a new netmap (UpdateNode notifies all nodes), carrying the
// authority's new head.
func (f *noiseFront) pushToAll() {
	for _, n := range f.control.AllNodes() {
		f.control.UpdateNode(n)
	}
}
