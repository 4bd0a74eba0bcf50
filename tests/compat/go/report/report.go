// Package report prints one JSON line per matrix scenario: {"cell", "ok", "detail", "ms"}.
package report

import (
	"encoding/json"
	"fmt"
	"os"
	"time"
)

type line struct {
	Cell   string `json:"cell"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
	MS     int64  `json:"ms"`
}

func emit(cell string, ok bool, detail string, ms int64) {
	b, _ := json.Marshal(line{cell, ok, detail, ms})
	fmt.Fprintln(os.Stdout, string(b))
}

// Cell runs one scenario; an error or a panic fails the cell, never the whole run.
func Cell(name string, body func() (string, error)) {
	start := time.Now()
	defer func() {
		if r := recover(); r != nil {
			emit(name, false, fmt.Sprint("panic: ", r), time.Since(start).Milliseconds())
		}
	}()
	detail, err := body()
	if err != nil {
		emit(name, false, err.Error(), time.Since(start).Milliseconds())
		return
	}
	emit(name, true, detail, time.Since(start).Milliseconds())
}

// Fail reports a cell that could not run at all.
func Fail(name string, err error) {
	emit(name, false, err.Error(), 0)
}
