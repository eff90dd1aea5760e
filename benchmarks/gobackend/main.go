// Command gobackend is the benchmark backend of benchmarks/backend.py, in Go:
// GET / answers "Hello $TARGET!\n" and GET /bytes/N answers N bytes
// (application/octet-stream, at most 64 MiB, built once per size). It listens on
// $HOST:$PORT (default 127.0.0.1:8080).
//
// It costs less CPU per request than nginx proxying to it, so what a hop costs is
// not hidden behind a slow backend (the Python sample app doubles nginx's own cost
// per request): `make bench` measures the hops against both (part "hops-go").
package main

import (
	"log"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
)

const maxBytes = 64 << 20

func getenv(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}

func main() {
	greeting := []byte("Hello " + getenv("TARGET", "World") + "!\n")
	var mu sync.Mutex
	sized := map[int][]byte{}

	http.HandleFunc("/bytes/", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/bytes/"))
		if err != nil || n < 0 || n > maxBytes {
			http.Error(w, "N must be an integer between 0 and 67108864", http.StatusBadRequest)
			return
		}
		mu.Lock()
		body, ok := sized[n]
		if !ok {
			body = make([]byte, n)
			for i := range body {
				body[i] = byte(i)
			}
			sized[n] = body
		}
		mu.Unlock()
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.Itoa(n))
		w.Write(body)
	})
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write(greeting)
	})
	addr := getenv("HOST", "127.0.0.1") + ":" + getenv("PORT", "8080")
	log.Fatal(http.ListenAndServe(addr, nil))
}
