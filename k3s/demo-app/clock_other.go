//go:build !linux

package main

import "time"

// threadClock falls back to wall time where thread CPU time is not available.
type threadClock struct{}

func lockThreadClock() threadClock     { return threadClock{} }
func (threadClock) release()           {}
func (threadClock) now() time.Duration { return time.Duration(time.Now().UnixNano()) }
