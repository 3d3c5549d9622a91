package main

import (
	"runtime"
	"syscall"
	"time"
)

// rusageThread is RUSAGE_THREAD: the calling thread's resource usage (Linux).
const rusageThread = 1

// threadClock reads the CPU time of the OS thread the goroutine is locked to.
type threadClock struct{}

func lockThreadClock() threadClock {
	runtime.LockOSThread()
	return threadClock{}
}

func (threadClock) release() { runtime.UnlockOSThread() }

func (threadClock) now() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		return time.Duration(time.Now().UnixNano())
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
