package main

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"tailscale.com/tka"
	"tailscale.com/tstest/integration/testcontrol"
	"tailscale.com/types/key"
)

var errNotEnabled = errors.New("tailnet lock is not enabled")

// The admin API is test-only and bound to loopback: it acts as the coordination service's
// operator (read nodes and the authority, set a node's signature as the service would).
func newAdmin(control *testcontrol.Server, front *noiseFront) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /admin/nodes", func(w http.ResponseWriter, r *http.Request) {
		type node struct {
			NodeKey             string `json:"node_key"`
			Name                string `json:"name"`
			StableID            string `json:"stable_id"`
			KeySignature        string `json:"key_signature"`
			RegisteredSignature string `json:"registered_signature"`
		}
		out := []node{}
		for _, n := range control.AllNodes() {
			out = append(out, node{
				NodeKey:             n.Key.String(),
				Name:                n.Name,
				StableID:            string(n.StableID),
				KeySignature:        base64.StdEncoding.EncodeToString(n.KeySignature),
				RegisteredSignature: base64.StdEncoding.EncodeToString(front.registeredSignature(n.Key)),
			})
		}
		reply(w, out)
	})
	mux.HandleFunc("POST /admin/sign", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			NodeKey   string `json:"node_key"`
			Signature string `json:"signature"`
		}
		if !decode(w, r, &req) {
			return
		}
		var k key.NodePublic
		if err := k.UnmarshalText([]byte(req.NodeKey)); err != nil {
			http.Error(w, "node_key: "+err.Error(), http.StatusBadRequest)
			return
		}
		sig, err := base64.StdEncoding.DecodeString(req.Signature)
		if err != nil {
			http.Error(w, "signature: "+err.Error(), http.StatusBadRequest)
			return
		}
		n := control.Node(k)
		if n == nil {
			http.Error(w, "no such node", http.StatusNotFound)
			return
		}
		n.KeySignature = sig
		control.UpdateNode(n)
		reply(w, map[string]bool{"ok": true})
	})
	mux.HandleFunc("GET /admin/tka", func(w http.ResponseWriter, r *http.Request) {
		chonk := front.storage()
		if chonk == nil {
			reply(w, map[string]any{"enabled": false, "head": "", "aums": []string{}})
			return
		}
		authority, err := tka.Open(chonk)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		all, err := chonk.AllAUMs()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		aums := []string{}
		for _, h := range all {
			aum, err := chonk.AUM(h)
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			aums = append(aums, base64.StdEncoding.EncodeToString(aum.Serialize()))
		}
		head := authority.Head()
		reply(w, map[string]any{"enabled": true, "head": hex.EncodeToString(head[:]), "aums": aums})
	})
	mux.HandleFunc("POST /admin/aums", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			AUMs []string `json:"aums"`
		}
		if !decode(w, r, &req) {
			return
		}
		aums := make([]tka.AUM, len(req.AUMs))
		for i, text := range req.AUMs {
			raw, err := base64.StdEncoding.DecodeString(text)
			if err == nil {
				err = aums[i].Unserialize(raw)
			}
			if err != nil {
				http.Error(w, "aum: "+err.Error(), http.StatusBadRequest)
				return
			}
		}
		if err := front.commit(aums); err != nil {
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
		reply(w, map[string]bool{"ok": true})
	})
	return mux
}

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := json.NewDecoder(io.LimitReader(r.Body, maxBody)).Decode(v); err != nil {
		http.Error(w, "request: "+err.Error(), http.StatusBadRequest)
		return false
	}
	return true
}

func reply(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}
