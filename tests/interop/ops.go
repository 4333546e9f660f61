package main

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"tailscale.com/feature/tailnetlock/tslockjsonv1"
	"tailscale.com/ipn/ipnstate"
	"tailscale.com/tailcfg"

	"go4.org/mem"
	"tailscale.com/tka"
	"tailscale.com/types/key"
	"tailscale.com/types/tkatype"
)

// request is the union of every op's fields; each op reads the ones it needs.
type request struct {
	Op string `json:"op"`

	AUM  *jAUM `json:"aum"`
	NKS  *jNKS `json:"nks"`
	CBOR Hex   `json:"cbor"`

	AUMs    []Hex  `json:"aums"`
	Handle  int    `json:"handle"`
	Dir     string `json:"dir"`
	LAI     Hex    `json:"lai"`
	NodeKey Hex    `json:"node_key"`
	Secret  Hex    `json:"secret"`

	Head      string   `json:"head"`
	Ancestors []string `json:"ancestors"`

	Seed     Hex   `json:"seed"`
	Remove   []Hex `json:"remove"`
	OurKey   Hex   `json:"our_key"`
	ForkFrom Hex   `json:"fork_from"`

	Ops []builderOp `json:"ops"`

	AuthKey  string `json:"authkey"`
	CredSeed Hex    `json:"cred_seed"`
	WrapSeed Hex    `json:"wrap_seed"`
	Wrapped  string `json:"wrapped"`

	Text string `json:"text"`
	Hash Hex    `json:"hash"`

	Deeplink map[string]string `json:"deeplink"`
	Status   *jStatus          `json:"status"`

	MinChain int   `json:"min_chain"`
	MinAgeNS int64 `json:"min_age_ns"`
}

type builderOp struct {
	Op    string            `json:"op"` // add | remove | vote | meta
	Key   *jKey             `json:"key"`
	KeyID Hex               `json:"key_id"`
	Votes uint              `json:"votes"`
	Meta  map[string]string `json:"meta"`
}

type authority struct {
	a     *tka.Authority
	store tka.Chonk
}

type server struct {
	next        int
	authorities map[int]*authority
}

func newServer() *server { return &server{authorities: map[int]*authority{}} }

func (s *server) add(a *tka.Authority, store tka.Chonk) response {
	s.next++
	s.authorities[s.next] = &authority{a: a, store: store}
	return response{"handle": s.next, "head": hexHash(a.Head())}
}

func (s *server) get(r *request) (*authority, error) {
	a, ok := s.authorities[r.Handle]
	if !ok {
		return nil, badRequest("no authority with handle %d", r.Handle)
	}
	return a, nil
}

func hexHash(h tka.AUMHash) string { return hex.EncodeToString(h[:]) }

func errText(err error) any {
	if err == nil {
		return nil
	}
	return err.Error()
}

func decodeAUMs(list []Hex) ([]tka.AUM, error) {
	out := make([]tka.AUM, len(list))
	for i, b := range list {
		if err := out[i].Unserialize(b); err != nil {
			return nil, badRequest("aums[%d] does not decode: %v", i, err)
		}
	}
	return out, nil
}

func hexAUMs(list []tka.AUM) []string {
	out := make([]string, len(list))
	for i := range list {
		out[i] = hex.EncodeToString(list[i].Serialize())
	}
	return out
}

func nodeKey(b []byte) (key.NodePublic, error) {
	if len(b) != 32 {
		return key.NodePublic{}, badRequest("node_key must be 32 bytes, got %d", len(b))
	}
	return key.NodePublicFromRaw32(mem.B(b)), nil
}

func hashFrom(b []byte) (tka.AUMHash, error) {
	var h tka.AUMHash
	if len(b) != len(h) {
		return h, badRequest("hash must be 32 bytes, got %d", len(b))
	}
	copy(h[:], b)
	return h, nil
}

var ops = map[string]func(*server, *request) (response, error){
	"ping": func(*server, *request) (response, error) { return response{"version": moduleVersion()}, nil },

	// aum_encode: build an AUM from its JSON description (signing with sign_seeds).
	"aum_encode": func(_ *server, r *request) (response, error) {
		if r.AUM == nil {
			return nil, badRequest("aum missing")
		}
		a, err := aumToGo(*r.AUM)
		if err != nil {
			return nil, badRequest("%v", err)
		}
		h, sh := a.Hash(), a.SigHash()
		return response{
			"cbor":         hex.EncodeToString(a.Serialize()),
			"hash":         hexHash(h),
			"hash_text":    h.String(),
			"sighash":      hex.EncodeToString(sh[:]),
			"static_error": errText(a.StaticValidate()),
			"aum":          aumFromGo(a),
		}, nil
	},

	// aum_decode: the reference decoder's verdict on arbitrary bytes.
	"aum_decode": func(_ *server, r *request) (response, error) {
		var a tka.AUM
		if err := a.Unserialize(r.CBOR); err != nil {
			return response{"decode_error": err.Error()}, nil
		}
		h, sh := a.Hash(), a.SigHash()
		return response{
			"decode_error": nil,
			"aum":          aumFromGo(a),
			"canonical":    hex.EncodeToString(a.Serialize()),
			"hash":         hexHash(h),
			"sighash":      hex.EncodeToString(sh[:]),
			"static_error": errText(a.StaticValidate()),
		}, nil
	},

	"nks_encode": func(_ *server, r *request) (response, error) {
		if r.NKS == nil {
			return nil, badRequest("nks missing")
		}
		n, err := nksToGo(*r.NKS)
		if err != nil {
			return nil, badRequest("%v", err)
		}
		sh := n.SigHash()
		return response{
			"cbor":    hex.EncodeToString(n.Serialize()),
			"sighash": hex.EncodeToString(sh[:]),
			"nks":     nksFromGo(n),
		}, nil
	},

	"nks_decode": func(_ *server, r *request) (response, error) {
		var n tka.NodeKeySignature
		if err := n.Unserialize(r.CBOR); err != nil {
			return response{"decode_error": err.Error()}, nil
		}
		sh := n.SigHash()
		res := response{
			"decode_error": nil,
			"nks":          nksFromGo(&n),
			"canonical":    hex.EncodeToString(n.Serialize()),
			"sighash":      hex.EncodeToString(sh[:]),
		}
		if id, err := n.UnverifiedAuthorizingKeyID(); err != nil {
			res["authorizing_key_id_error"] = err.Error()
		} else {
			res["authorizing_key_id"] = hex.EncodeToString(id)
		}
		if pub, ok := n.UnverifiedWrappingPublic(); ok {
			res["wrapping_public"] = hex.EncodeToString(pub)
		} else {
			res["wrapping_public"] = nil
		}
		return res, nil
	},

	"kdf": func(_ *server, r *request) (response, error) {
		return response{"value": hex.EncodeToString(tka.DisablementKDF(r.Secret))}, nil
	},

	"hash_parse": func(_ *server, r *request) (response, error) {
		var h tka.AUMHash
		if err := h.UnmarshalText([]byte(r.Text)); err != nil {
			return response{"parse_error": err.Error()}, nil
		}
		return response{"parse_error": nil, "hash": hexHash(h)}, nil
	},

	"hash_text": func(_ *server, r *request) (response, error) {
		h, err := hashFrom(r.Hash)
		if err != nil {
			return nil, err
		}
		return response{"text": h.String()}, nil
	},

	// authority_bootstrap: tka.Bootstrap from a genesis AUM into a fresh in-memory store
	// (or the filesystem store at dir).
	"authority_bootstrap": func(s *server, r *request) (response, error) {
		var g tka.AUM
		if err := g.Unserialize(r.CBOR); err != nil {
			return nil, badRequest("genesis does not decode: %v", err)
		}
		store, err := newStore(r.Dir)
		if err != nil {
			return nil, err
		}
		a, err := tka.Bootstrap(store, g)
		if err != nil {
			return response{"error_text": err.Error()}, nil
		}
		res := s.add(a, store)
		res["error_text"] = nil
		return res, nil
	},

	// authority_open: store AUMs without verification (CommitVerifiedAUMs), set the
	// last-active-ancestor hint if given, then tka.Open. With dir, the store is tka.FS.
	"authority_open": func(s *server, r *request) (response, error) {
		aums, err := decodeAUMs(r.AUMs)
		if err != nil {
			return nil, err
		}
		store, err := newStore(r.Dir)
		if err != nil {
			return nil, err
		}
		if len(aums) > 0 {
			if err := store.CommitVerifiedAUMs(aums); err != nil {
				return nil, badRequest("commit: %v", err)
			}
		}
		if r.LAI != nil {
			h, err := hashFrom(r.LAI)
			if err != nil {
				return nil, err
			}
			if err := store.SetLastActiveAncestor(h); err != nil {
				return nil, badRequest("set ancestor: %v", err)
			}
		}
		a, err := tka.Open(store)
		if err != nil {
			return response{"error_text": err.Error()}, nil
		}
		res := s.add(a, store)
		res["error_text"] = nil
		return res, nil
	},

	// fs_write: write AUMs (and the hint) into a tka.FS directory, without opening it.
	"fs_write": func(_ *server, r *request) (response, error) {
		aums, err := decodeAUMs(r.AUMs)
		if err != nil {
			return nil, err
		}
		store, err := tka.ChonkDir(r.Dir)
		if err != nil {
			return nil, badRequest("chonk dir: %v", err)
		}
		if err := store.CommitVerifiedAUMs(aums); err != nil {
			return nil, badRequest("commit: %v", err)
		}
		if r.LAI != nil {
			h, err := hashFrom(r.LAI)
			if err != nil {
				return nil, err
			}
			if err := store.SetLastActiveAncestor(h); err != nil {
				return nil, badRequest("set ancestor: %v", err)
			}
		}
		return nil, nil
	},

	// fs_read: what tka.FS sees in a directory (live AUMs, heads, hint), without opening.
	"fs_read": func(_ *server, r *request) (response, error) {
		store, err := tka.ChonkDir(r.Dir)
		if err != nil {
			return response{"error_text": err.Error()}, nil
		}
		all, err := store.AllAUMs()
		if err != nil {
			return response{"error_text": "all: " + err.Error()}, nil
		}
		res := response{"error_text": nil}
		var hashes, aums []string
		for _, h := range all {
			a, err := store.AUM(h)
			if err != nil {
				return response{"error_text": fmt.Sprintf("aum %x: %v", h[:], err)}, nil
			}
			hashes = append(hashes, hexHash(h))
			aums = append(aums, hex.EncodeToString(a.Serialize()))
		}
		res["hashes"], res["aums"] = hashes, aums
		heads, err := store.Heads()
		if err != nil {
			return response{"error_text": "heads: " + err.Error()}, nil
		}
		var hh []string
		for _, h := range heads {
			hh = append(hh, hexHash(h.Hash()))
		}
		res["heads"] = hh
		lai, err := store.LastActiveAncestor()
		if err != nil {
			return response{"error_text": "lai: " + err.Error()}, nil
		}
		if lai != nil {
			res["lai"] = hexHash(*lai)
		} else {
			res["lai"] = nil
		}
		return res, nil
	},

	"close": func(s *server, r *request) (response, error) {
		delete(s.authorities, r.Handle)
		return nil, nil
	},

	// inform: Authority.Inform with AUMs oldest first; a verdict, not a request error.
	"inform": func(s *server, r *request) (response, error) {
		a, err := s.get(r)
		if err != nil {
			return nil, err
		}
		aums, err := decodeAUMs(r.AUMs)
		if err != nil {
			return nil, err
		}
		if err := a.a.Inform(a.store, aums); err != nil {
			return response{"error_text": err.Error(), "head": hexHash(a.a.Head())}, nil
		}
		return response{"error_text": nil, "head": hexHash(a.a.Head())}, nil
	},

	"state": func(s *server, r *request) (response, error) {
		a, err := s.get(r)
		if err != nil {
			return nil, err
		}
		return stateOf(a)
	},

	"nka": func(s *server, r *request) (response, error) {
		a, err := s.get(r)
		if err != nil {
			return nil, err
		}
		nk, err := nodeKey(r.NodeKey)
		if err != nil {
			return nil, err
		}
		details, verr := a.a.NodeKeyAuthorizedWithDetails(nk, tkatype.MarshaledSignature(r.CBOR))
		res := response{"error_text": errText(verr), "rotation": nil}
		if verr == nil && details != nil {
			prev := make([]string, len(details.PrevNodeKeys))
			for i, k := range details.PrevNodeKeys {
				raw := k.Raw32()
				prev[i] = hex.EncodeToString(raw[:])
			}
			var initial any
			if details.InitialSig != nil {
				initial = hex.EncodeToString(details.InitialSig.Serialize())
			}
			res["rotation"] = response{"prev_node_keys": prev, "initial_sig": initial}
		}
		return res, nil
	},

	"valid_disablement": func(s *server, r *request) (response, error) {
		a, err := s.get(r)
		if err != nil {
			return nil, err
		}
		return response{"valid": a.a.ValidDisablement(r.Secret)}, nil
	},

	"sync_offer": func(s *server, r *request) (response, error) {
		a, err := s.get(r)
		if err != nil {
			return nil, err
		}
		offer, err := a.a.SyncOffer(a.store)
		if err != nil {
			return response{"error_text": err.Error()}, nil
		}
		head, anc, err := tka.FromSyncOffer(offer)
		if err != nil {
			return nil, badRequest("%v", err)
		}
		return response{"error_text": nil, "head": head, "ancestors": anc}, nil
	},

	"missing_aums": func(s *server, r *request) (response, error) {
		a, err := s.get(r)
		if err != nil {
			return nil, err
		}
		offer, err := tka.ToSyncOffer(r.Head, r.Ancestors)
		if err != nil {
			return response{"error_text": err.Error()}, nil
		}
		missing, err := a.a.MissingAUMs(a.store, offer)
		if err != nil {
			return response{"error_text": err.Error()}, nil
		}
		return response{"error_text": nil, "aums": hexAUMs(missing)}, nil
	},

	// recovery_make: MakeRetroactiveRevocation, then signed with seed (as the initiating node does).
	"recovery_make": func(s *server, r *request) (response, error) {
		a, err := s.get(r)
		if err != nil {
			return nil, err
		}
		priv, err := nlFromSeed(r.Seed)
		if err != nil {
			return nil, badRequest("%v", err)
		}
		var fork tka.AUMHash
		if r.ForkFrom != nil {
			if fork, err = hashFrom(r.ForkFrom); err != nil {
				return nil, err
			}
		}
		remove := make([]tkatype.KeyID, len(r.Remove))
		for i, k := range r.Remove {
			remove[i] = tkatype.KeyID(k)
		}
		aum, err := a.a.MakeRetroactiveRevocation(a.store, remove, priv.KeyID(), fork)
		if err != nil {
			return response{"error_text": err.Error()}, nil
		}
		sigs, err := priv.SignAUM(aum.SigHash())
		if err != nil {
			return nil, err
		}
		aum.Signatures = append(aum.Signatures, sigs...)
		return response{"error_text": nil, "cbor": hex.EncodeToString(aum.Serialize())}, nil
	},

	// recovery_cosign: what `tailscale lock revoke-keys --cosign` does with a blob.
	"recovery_cosign": func(_ *server, r *request) (response, error) {
		priv, err := nlFromSeed(r.Seed)
		if err != nil {
			return nil, badRequest("%v", err)
		}
		var aum tka.AUM
		if err := aum.Unserialize(r.CBOR); err != nil {
			return response{"error_text": "decoding recovery AUM: " + err.Error()}, nil
		}
		for _, sig := range aum.Signatures {
			if bytes.Equal(sig.KeyID, priv.KeyID()) {
				return response{"error_text": "this node has already signed this recovery AUM"}, nil
			}
		}
		sigs, err := priv.SignAUM(aum.SigHash())
		if err != nil {
			return nil, err
		}
		aum.Signatures = append(aum.Signatures, sigs...)
		return response{"error_text": nil, "cbor": hex.EncodeToString(aum.Serialize())}, nil
	},

	// builder: Authority.NewUpdater + operations + Finalize, the AUMs are returned (not informed).
	"builder": func(s *server, r *request) (response, error) {
		a, err := s.get(r)
		if err != nil {
			return nil, err
		}
		var signer tka.Signer
		if r.Seed != nil {
			priv, err := nlFromSeed(r.Seed)
			if err != nil {
				return nil, badRequest("%v", err)
			}
			signer = priv
		}
		b := a.a.NewUpdater(signer)
		for i, op := range r.Ops {
			var err error
			switch op.Op {
			case "add":
				if op.Key == nil {
					return nil, badRequest("ops[%d]: key missing", i)
				}
				err = b.AddKey(keyToGo(*op.Key))
			case "remove":
				err = b.RemoveKey(tkatype.KeyID(op.KeyID))
			case "vote":
				err = b.SetKeyVote(tkatype.KeyID(op.KeyID), op.Votes)
			case "meta":
				err = b.SetKeyMeta(tkatype.KeyID(op.KeyID), op.Meta)
			default:
				return nil, badRequest("ops[%d]: unknown builder op %q", i, op.Op)
			}
			if err != nil {
				return response{"error_text": fmt.Sprintf("op %d: %v", i, err)}, nil
			}
		}
		out, err := b.Finalize(a.store)
		if err != nil {
			return response{"error_text": "finalize: " + err.Error()}, nil
		}
		return response{"error_text": nil, "aums": hexAUMs(out)}, nil
	},

	// wrap_authkey: what TailnetLockWrapPreauthKey does, with the two random keys replaced by
	// seeds (cred_seed = the trusted credential key C, wrap_seed = the wrapping key W).
	"wrap_authkey": func(_ *server, r *request) (response, error) {
		cred, err := nlFromSeed(r.CredSeed)
		if err != nil {
			return nil, badRequest("cred_seed: %v", err)
		}
		if len(r.WrapSeed) != ed25519.SeedSize {
			return nil, badRequest("wrap_seed must be 32 bytes")
		}
		priv := ed25519.NewKeyFromSeed(r.WrapSeed)
		sig := tka.NodeKeySignature{
			SigKind:        tka.SigCredential,
			KeyID:          cred.KeyID(),
			WrappingPubkey: priv.Public().(ed25519.PublicKey),
		}
		if sig.Signature, err = cred.SignNKS(sig.SigHash()); err != nil {
			return nil, err
		}
		enc := base64.RawStdEncoding
		return response{"wrapped": fmt.Sprintf("%s--TL%s-%s", r.AuthKey,
			enc.EncodeToString(sig.Serialize()), enc.EncodeToString(priv))}, nil
	},

	// use_wrapped: DecodeWrappedAuthkey + SignByCredential, what a node does at registration.
	"use_wrapped": func(_ *server, r *request) (response, error) {
		nk, err := nodeKey(r.NodeKey)
		if err != nil {
			return nil, err
		}
		var logs []string
		logf := func(format string, args ...any) { logs = append(logs, fmt.Sprintf(format, args...)) }
		authKey, isWrapped, sig, priv := tka.DecodeWrappedAuthkey(r.Wrapped, logf)
		res := response{"authkey": authKey, "is_wrapped": isWrapped, "log": logs, "nks": nil,
			"sign_error": nil}
		if !isWrapped {
			return res, nil
		}
		res["credential"] = hex.EncodeToString(sig.Serialize())
		res["private"] = hex.EncodeToString(priv)
		if len(priv) != ed25519.PrivateKeySize {
			res["sign_error"] = fmt.Sprintf("private key has %d bytes", len(priv))
			return res, nil
		}
		out, err := tka.SignByCredential(priv, sig, nk)
		if err != nil {
			res["sign_error"] = err.Error()
			return res, nil
		}
		res["nks"] = hex.EncodeToString(out)
		return res, nil
	},

	// compact: Authority.Compact with the given MinChain and MinAge (nanoseconds); reports the
	// AUMs left in the store and the new last-active ancestor.
	"compact": func(s *server, r *request) (response, error) {
		a, err := s.get(r)
		if err != nil {
			return nil, err
		}
		store, ok := a.store.(tka.CompactableChonk)
		if !ok {
			return nil, badRequest("store is not compactable")
		}
		opts := tka.CompactionOptions{MinChain: r.MinChain, MinAge: time.Duration(r.MinAgeNS)}
		if err := a.a.Compact(store, opts); err != nil {
			return response{"error_text": err.Error()}, nil
		}
		all, err := store.AllAUMs()
		if err != nil {
			return nil, err
		}
		left := make([]string, len(all))
		for i, h := range all {
			left[i] = hexHash(h)
		}
		lai, err := store.LastActiveAncestor()
		if err != nil {
			return nil, err
		}
		return response{"error_text": nil, "aums": left, "lai": hexHash(*lai)}, nil
	},

	// deeplink_new / deeplink_validate: Authority.NewDeeplink and ValidateDeeplink.
	"deeplink_new": func(s *server, r *request) (response, error) {
		a, err := s.get(r)
		if err != nil {
			return nil, err
		}
		p := r.Deeplink
		url, err := a.a.NewDeeplink(tka.NewDeeplinkParams{NodeKey: p["nk"], TLPub: p["tp"],
			DeviceName: p["dn"], OSName: p["os"], LoginName: p["em"]})
		if err != nil {
			return response{"error_text": err.Error()}, nil
		}
		return response{"error_text": nil, "url": url}, nil
	},
	"deeplink_validate": func(s *server, r *request) (response, error) {
		a, err := s.get(r)
		if err != nil {
			return nil, err
		}
		v := a.a.ValidateDeeplink(r.Text)
		return response{"valid": v.IsValid, "error": v.Error, "nk": v.NodeKey, "tp": v.TLPub,
			"dn": v.DeviceName, "os": v.OSName, "em": v.EmailAddress}, nil
	},

	// log_json: what `tailscale lock log --json` prints for these AUMs (newest first).
	"log_json": func(_ *server, r *request) (response, error) {
		aums, err := decodeAUMs(r.AUMs)
		if err != nil {
			return nil, err
		}
		updates := make([]ipnstate.NetworkLockUpdate, len(aums))
		for i, a := range aums {
			updates[i] = ipnstate.NetworkLockUpdate{Hash: a.Hash(), Change: a.MessageKind.String(),
				Raw: a.Serialize()}
		}
		resp, err := tslockjsonv1.LogResponse(updates)
		if err != nil {
			return response{"error_text": err.Error()}, nil
		}
		var out bytes.Buffer
		enc := json.NewEncoder(&out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(resp); err != nil {
			return nil, err
		}
		return response{"error_text": nil, "text": out.String()}, nil
	},

	// status_json: what `tailscale lock status --json` prints for this status.
	"status_json": func(_ *server, r *request) (response, error) {
		st, err := statusToGo(r.Status)
		if err != nil {
			return nil, badRequest("status: %v", err)
		}
		var out bytes.Buffer
		enc := json.NewEncoder(&out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(tslockjsonv1.StatusResponse(st)); err != nil {
			return nil, err
		}
		return response{"text": out.String()}, nil
	},

	// status_ipnstate_json: the same status as ipnstate.TailnetLockStatus marshalled as it is,
	// what tailscaled's LocalAPI answers at /localapi/v0/tka/status (and what
	// `tailscale lock status --json` printed before its versioned envelope).
	"status_ipnstate_json": func(_ *server, r *request) (response, error) {
		st, err := statusToGo(r.Status)
		if err != nil {
			return nil, badRequest("status: %v", err)
		}
		out, err := json.MarshalIndent(st, "", "\t")
		if err != nil {
			return nil, err
		}
		return response{"text": string(out)}, nil
	},

	// resign: tka.ResignNKS (a node re-signing its signature for a new node key).
	"resign": func(_ *server, r *request) (response, error) {
		priv, err := nlFromSeed(r.Seed)
		if err != nil {
			return nil, badRequest("%v", err)
		}
		nk, err := nodeKey(r.NodeKey)
		if err != nil {
			return nil, err
		}
		out, err := tka.ResignNKS(priv, nk, tkatype.MarshaledSignature(r.CBOR))
		if err != nil {
			return response{"error_text": err.Error()}, nil
		}
		return response{"error_text": nil, "cbor": hex.EncodeToString(out)}, nil
	},
}

func newStore(dir string) (tka.Chonk, error) {
	if dir == "" {
		return tka.ChonkMem(), nil
	}
	fs, err := tka.ChonkDir(dir)
	if err != nil {
		return nil, badRequest("chonk dir: %v", err)
	}
	return fs, nil
}

// stateOf reports the authority's head state. The reference keeps the state unexported; its
// complete contents (keys and disablement values in order, state IDs) are exactly what
// MakeRetroactiveRevocation copies into a checkpoint when asked to revoke nothing.
func stateOf(a *authority) (response, error) {
	head := a.a.Head()
	aum, err := a.a.MakeRetroactiveRevocation(a.store, nil, nil, head)
	if aum == nil {
		return nil, fmt.Errorf("reading state through a revocation AUM: %v", err)
	}
	offer, oerr := a.a.SyncOffer(a.store)
	var oldest any
	if oerr == nil && len(offer.Ancestors) > 0 {
		oldest = hexHash(offer.Ancestors[len(offer.Ancestors)-1])
	}
	st := stateFromGo(*aum.State)
	id1, id2 := a.a.StateIDs()
	if id1 != st.ID1 || id2 != st.ID2 {
		return nil, errors.New("state IDs disagree between StateIDs() and the state copy")
	}
	return response{"head": hexHash(head), "state": st, "oldest": oldest}, nil
}

type jPeer struct {
	Name     string   `json:"name"`
	ID       int64    `json:"id"`
	StableID string   `json:"stable_id"`
	IPs      []string `json:"ips"`
	NodeKey  Hex      `json:"node_key"`
	NKS      Hex      `json:"nks"`
}

type jStatus struct {
	Enabled bool    `json:"enabled"`
	Head    Hex     `json:"head"`
	Public  Hex     `json:"public"`
	NodeKey Hex     `json:"node_key"`
	Signed  bool    `json:"signed"`
	NKS     Hex     `json:"nks"`
	Keys    []jKey  `json:"keys"`
	Visible []jPeer `json:"visible"`
	Filter  []jPeer `json:"filtered"`
	StateID uint64  `json:"state_id"`
}

func peersToGo(list []jPeer) ([]*ipnstate.TKAPeer, error) {
	out := make([]*ipnstate.TKAPeer, 0, len(list))
	for _, p := range list {
		nk, err := nodeKey(p.NodeKey)
		if err != nil {
			return nil, err
		}
		peer := &ipnstate.TKAPeer{Name: p.Name, ID: tailcfg.NodeID(p.ID),
			StableID: tailcfg.StableNodeID(p.StableID), NodeKey: nk}
		for _, ip := range p.IPs {
			addr, err := netip.ParseAddr(ip)
			if err != nil {
				return nil, err
			}
			peer.TailscaleIPs = append(peer.TailscaleIPs, addr)
		}
		if p.NKS != nil {
			if err := peer.NodeKeySignature.Unserialize(p.NKS); err != nil {
				return nil, err
			}
		}
		out = append(out, peer)
	}
	return out, nil
}

func statusToGo(j *jStatus) (*ipnstate.TailnetLockStatus, error) {
	if j == nil {
		return nil, errors.New("missing")
	}
	st := &ipnstate.TailnetLockStatus{Enabled: j.Enabled, NodeKeySigned: j.Signed, StateID: j.StateID}
	if j.Head != nil {
		var h [32]byte
		copy(h[:], j.Head)
		st.Head = &h
	}
	if j.Public != nil {
		st.PublicKey = key.NLPublicFromEd25519Unsafe(ed25519.PublicKey(j.Public))
	}
	if j.NodeKey != nil {
		nk, err := nodeKey(j.NodeKey)
		if err != nil {
			return nil, err
		}
		st.NodeKey = &nk
	}
	if j.NKS != nil {
		var sig tka.NodeKeySignature
		if err := sig.Unserialize(j.NKS); err != nil {
			return nil, err
		}
		st.NodeKeySignature = &sig
	}
	for _, k := range j.Keys {
		gk := keyToGo(k)
		st.TrustedKeys = append(st.TrustedKeys, ipnstate.TKAKey{Kind: gk.Kind.String(),
			Key: key.NLPublicFromEd25519Unsafe(ed25519.PublicKey(gk.Public)), Metadata: gk.Meta,
			Votes: gk.Votes})
	}
	var err error
	if st.VisiblePeers, err = peersToGo(j.Visible); err != nil {
		return nil, err
	}
	if st.FilteredPeers, err = peersToGo(j.Filter); err != nil {
		return nil, err
	}
	return st, nil
}
