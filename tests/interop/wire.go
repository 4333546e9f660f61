package main

// JSON descriptions of the reference's wire types. Every byte string is lower-case hex; JSON null
// (or a missing field) means a nil slice / nil pointer / nil map, while "" / {} / [] mean present
// but empty, so both sides can express the nil-vs-empty distinction the CBOR encoding depends on.

import (
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"tailscale.com/tka"
	"tailscale.com/types/key"
	"tailscale.com/types/tkatype"
)

// Hex is a byte string that keeps nil (JSON null) apart from empty (JSON "").
type Hex []byte

func (h Hex) MarshalJSON() ([]byte, error) {
	if h == nil {
		return []byte("null"), nil
	}
	return json.Marshal(hex.EncodeToString(h))
}

func (h *Hex) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*h = nil
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	d, err := hex.DecodeString(s)
	if err != nil {
		return err
	}
	if d == nil {
		d = []byte{}
	}
	*h = d
	return nil
}

type jKey struct {
	Kind   uint8             `json:"kind"`
	Votes  uint              `json:"votes"`
	Public Hex               `json:"public"`
	Meta   map[string]string `json:"meta"`
}

type jSig struct {
	KeyID Hex `json:"key_id"`
	Sig   Hex `json:"sig"`
}

type jState struct {
	Last        Hex    `json:"last"`
	Disablement []Hex  `json:"disablement"`
	Keys        []jKey `json:"keys"`
	ID1         uint64 `json:"id1"`
	ID2         uint64 `json:"id2"`
}

type jAUM struct {
	Kind  uint8             `json:"kind"`
	Prev  Hex               `json:"prev"`
	Key   *jKey             `json:"key"`
	KeyID Hex               `json:"key_id"`
	State *jState           `json:"state"`
	Votes *uint             `json:"votes"`
	Meta  map[string]string `json:"meta"`
	Sigs  []jSig            `json:"sigs"`
	// SignSeeds: 32-byte Ed25519 seeds whose signatures over the SigHash are appended (request only).
	SignSeeds []Hex `json:"sign_seeds,omitempty"`
}

type jNKS struct {
	Kind     uint8 `json:"kind"`
	Pubkey   Hex   `json:"pubkey"`
	KeyID    Hex   `json:"key_id"`
	Sig      Hex   `json:"sig"`
	Nested   *jNKS `json:"nested"`
	Wrapping Hex   `json:"wrapping"`
	// SignSeed: if set, this level's Signature is replaced by a signature over its SigHash
	// (computed after the nested level has been built and signed). Request only.
	SignSeed Hex `json:"sign_seed,omitempty"`
}

func keyToGo(k jKey) tka.Key {
	return tka.Key{Kind: tka.KeyKind(k.Kind), Votes: k.Votes, Public: []byte(k.Public), Meta: k.Meta}
}

func keyFromGo(k tka.Key) jKey {
	return jKey{Kind: uint8(k.Kind), Votes: k.Votes, Public: Hex(k.Public), Meta: k.Meta}
}

func stateToGo(s jState) tka.State {
	out := tka.State{StateID1: s.ID1, StateID2: s.ID2}
	if s.Last != nil {
		var h tka.AUMHash
		copy(h[:], s.Last)
		out.LastAUMHash = &h
	}
	if s.Disablement != nil {
		out.DisablementValues = make([][]byte, len(s.Disablement))
		for i, d := range s.Disablement {
			out.DisablementValues[i] = []byte(d)
		}
	}
	if s.Keys != nil {
		out.Keys = make([]tka.Key, len(s.Keys))
		for i, k := range s.Keys {
			out.Keys[i] = keyToGo(k)
		}
	}
	return out
}

func stateFromGo(s tka.State) jState {
	out := jState{ID1: s.StateID1, ID2: s.StateID2}
	if s.LastAUMHash != nil {
		out.Last = Hex(s.LastAUMHash[:])
	}
	if s.DisablementValues != nil {
		out.Disablement = make([]Hex, len(s.DisablementValues))
		for i, d := range s.DisablementValues {
			out.Disablement[i] = Hex(d)
		}
	}
	if s.Keys != nil {
		out.Keys = make([]jKey, len(s.Keys))
		for i, k := range s.Keys {
			out.Keys[i] = keyFromGo(k)
		}
	}
	return out
}

func aumToGo(a jAUM) (tka.AUM, error) {
	out := tka.AUM{
		MessageKind: tka.AUMKind(a.Kind),
		PrevAUMHash: tka.PrevAUMHash(a.Prev),
		KeyID:       tkatype.KeyID(a.KeyID),
		Votes:       a.Votes,
		Meta:        a.Meta,
	}
	if a.Key != nil {
		k := keyToGo(*a.Key)
		out.Key = &k
	}
	if a.State != nil {
		s := stateToGo(*a.State)
		out.State = &s
	}
	if a.Sigs != nil {
		out.Signatures = make([]tkatype.Signature, len(a.Sigs))
		for i, s := range a.Sigs {
			out.Signatures[i] = tkatype.Signature{KeyID: tkatype.KeyID(s.KeyID), Signature: []byte(s.Sig)}
		}
	}
	for _, seed := range a.SignSeeds {
		priv, err := nlFromSeed(seed)
		if err != nil {
			return tka.AUM{}, err
		}
		sigs, err := priv.SignAUM(out.SigHash())
		if err != nil {
			return tka.AUM{}, err
		}
		out.Signatures = append(out.Signatures, sigs...)
	}
	return out, nil
}

func aumFromGo(a tka.AUM) jAUM {
	out := jAUM{
		Kind:  uint8(a.MessageKind),
		Prev:  Hex(a.PrevAUMHash),
		KeyID: Hex(a.KeyID),
		Votes: a.Votes,
		Meta:  a.Meta,
	}
	if a.Key != nil {
		k := keyFromGo(*a.Key)
		out.Key = &k
	}
	if a.State != nil {
		s := stateFromGo(*a.State)
		out.State = &s
	}
	if a.Signatures != nil {
		out.Sigs = make([]jSig, len(a.Signatures))
		for i, s := range a.Signatures {
			out.Sigs[i] = jSig{KeyID: Hex(s.KeyID), Sig: Hex(s.Signature)}
		}
	}
	return out
}

func nksToGo(n jNKS) (*tka.NodeKeySignature, error) {
	out := &tka.NodeKeySignature{
		SigKind:        tka.SigKind(n.Kind),
		Pubkey:         []byte(n.Pubkey),
		KeyID:          []byte(n.KeyID),
		Signature:      []byte(n.Sig),
		WrappingPubkey: []byte(n.Wrapping),
	}
	if n.Nested != nil {
		nested, err := nksToGo(*n.Nested)
		if err != nil {
			return nil, err
		}
		out.Nested = nested
	}
	if n.SignSeed != nil {
		if len(n.SignSeed) != ed25519.SeedSize {
			return nil, fmt.Errorf("sign_seed must be 32 bytes, got %d", len(n.SignSeed))
		}
		h := out.SigHash()
		out.Signature = ed25519.Sign(ed25519.NewKeyFromSeed(n.SignSeed), h[:])
	}
	return out, nil
}

func nksFromGo(s *tka.NodeKeySignature) *jNKS {
	if s == nil {
		return nil
	}
	return &jNKS{
		Kind:     uint8(s.SigKind),
		Pubkey:   Hex(s.Pubkey),
		KeyID:    Hex(s.KeyID),
		Sig:      Hex(s.Signature),
		Nested:   nksFromGo(s.Nested),
		Wrapping: Hex(s.WrappingPubkey),
	}
}

// nlFromSeed turns a 32-byte seed into the reference's tailnet-lock private key type, through
// its public text form (the only exported constructor besides random generation).
func nlFromSeed(seed []byte) (key.NLPrivate, error) {
	var k key.NLPrivate
	if len(seed) != ed25519.SeedSize {
		return k, fmt.Errorf("seed must be 32 bytes, got %d", len(seed))
	}
	priv := ed25519.NewKeyFromSeed(seed)
	err := k.UnmarshalText([]byte("nlpriv:" + hex.EncodeToString(priv)))
	return k, err
}
