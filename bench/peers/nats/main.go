// natsbench: the Brook peer workload against NATS JetStream (R3 file stream), for `make bench-peers`.
//
// Modes (one JSON line on stdout each):
//
//	produce  -size N -seconds S            async publish as fast as acks allow (bounded in-flight)
//	consume  -count N -seconds S           ordered pull consumer reads what produce wrote
//	paced    -size N -rate R -seconds S    publish at R msg/s; latency = publish call to ack, per message
//
// Every publish waits for JetStream's ack, which it sends after the R3 stream's quorum stored it:
// the equivalent of acks=all.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
)

type result struct {
	Mode     string  `json:"mode"`
	Records  int     `json:"records"`
	Seconds  float64 `json:"seconds"`
	PerSec   float64 `json:"per_s"`
	MBPerSec float64 `json:"mb_per_s"`
	P50      float64 `json:"p50_ms,omitempty"`
	P99      float64 `json:"p99_ms,omitempty"`
	P999     float64 `json:"p999_ms,omitempty"`
	Max      float64 `json:"max_ms,omitempty"`
	Errors   int     `json:"errors"`
}

func pct(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p / 100 * float64(len(sorted)-1))
	return sorted[i]
}

func main() {
	url := flag.String("url", nats.DefaultURL, "server URLs, comma separated")
	mode := flag.String("mode", "produce", "produce | consume | paced")
	stream := flag.String("stream", "bench", "stream name (subject = stream name)")
	size := flag.Int("size", 100, "message size in bytes")
	seconds := flag.Float64("seconds", 8, "time cap")
	count := flag.Int("count", 1_000_000, "record cap")
	rate := flag.Int("rate", 5000, "paced: messages per second")
	inflight := flag.Int("inflight", 4096, "produce: max unacknowledged publishes")
	create := flag.Bool("create", false, "create the stream (R3, file storage) first")
	flag.Parse()

	nc, err := nats.Connect(*url)
	if err != nil {
		fmt.Fprintln(os.Stderr, "connect:", err)
		os.Exit(1)
	}
	defer nc.Close()
	var asyncErrors atomic.Int64
	js, err := nc.JetStream(nats.PublishAsyncMaxPending(*inflight),
		nats.PublishAsyncErrHandler(func(nats.JetStream, *nats.Msg, error) { asyncErrors.Add(1) }))
	if err != nil {
		fmt.Fprintln(os.Stderr, "jetstream:", err)
		os.Exit(1)
	}
	if *create {
		_ = js.DeleteStream(*stream)
		if _, err := js.AddStream(&nats.StreamConfig{Name: *stream, Subjects: []string{*stream},
			Replicas: 3, Storage: nats.FileStorage}); err != nil {
			fmt.Fprintln(os.Stderr, "add stream:", err)
			os.Exit(1)
		}
	}
	payload := make([]byte, *size)
	deadline := time.Duration(*seconds * float64(time.Second))
	var r result
	r.Mode = *mode
	start := time.Now()
	switch *mode {
	case "produce":
		sent := 0
		for sent < *count && time.Since(start) < deadline {
			if _, err := js.PublishAsync(*stream, payload); err != nil {
				r.Errors++
				continue
			}
			sent++
		}
		left := 0
		select {
		case <-js.PublishAsyncComplete():
		case <-time.After(30 * time.Second):
			left = js.PublishAsyncPending()
		}
		r.Errors += left + int(asyncErrors.Load())
		r.Records = sent - left - int(asyncErrors.Load())
	case "consume":
		sub, err := js.PullSubscribe(*stream, "", nats.OrderedConsumer())
		if err != nil {
			// Ordered pull consumers need a newer API; fall back to an ephemeral pull consumer.
			sub, err = js.PullSubscribe(*stream, "", nats.DeliverAll(), nats.AckNone())
			if err != nil {
				fmt.Fprintln(os.Stderr, "subscribe:", err)
				os.Exit(1)
			}
		}
		for r.Records < *count && time.Since(start) < deadline {
			msgs, err := sub.Fetch(5000, nats.MaxWait(500*time.Millisecond))
			if err != nil && err != nats.ErrTimeout {
				r.Errors++
			}
			r.Records += len(msgs)
		}
	case "paced":
		interval := time.Second / time.Duration(*rate)
		type pending struct {
			t time.Time
			f nats.PubAckFuture
		}
		lat := make([]float64, 0, int(float64(*rate)**seconds)+1)
		done := make(chan pending, 1_000_000)
		collected := make(chan struct{})
		go func() {
			for p := range done {
				select {
				case <-p.f.Ok():
					lat = append(lat, float64(time.Since(p.t).Microseconds())/1000)
				case <-p.f.Err():
					r.Errors++
				}
			}
			close(collected)
		}()
		next := start
		for time.Since(start) < deadline {
			now := time.Now()
			if now.Before(next) {
				time.Sleep(next.Sub(now))
			}
			next = next.Add(interval)
			t := time.Now()
			f, err := js.PublishAsync(*stream, payload)
			if err != nil {
				r.Errors++
				continue
			}
			done <- pending{t, f}
		}
		close(done)
		<-collected
		sort.Float64s(lat)
		r.Records = len(lat)
		r.P50, r.P99, r.P999 = pct(lat, 50), pct(lat, 99), pct(lat, 99.9)
		if len(lat) > 0 {
			r.Max = lat[len(lat)-1]
		}
	default:
		fmt.Fprintln(os.Stderr, "unknown mode", *mode)
		os.Exit(2)
	}
	r.Seconds = time.Since(start).Seconds()
	r.PerSec = float64(r.Records) / r.Seconds
	r.MBPerSec = float64(r.Records) * float64(*size) / r.Seconds / 1e6
	out, _ := json.Marshal(r)
	fmt.Println(string(out))
}
