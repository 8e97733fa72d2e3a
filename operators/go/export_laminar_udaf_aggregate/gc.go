package export_laminar_udaf_aggregate

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
)

// Garbage collection runs inside the aggregate's calls, never while the host allocates
// their arguments.
//
// The host writes a call's arguments into memory it gets from the module's cabi_realloc,
// which the bindings serve from the Go heap. An allocation there may help the collector
// and finish a cycle (mallocgc → gcAssistAlloc → gcMarkDone → gcMarkTermination), which
// reads the wall clock (time.now → clock_time_get → wasi:clocks/wall-clock.now), and the
// component model forbids a component to call out while the host is lowering arguments
// into it: the call traps with "cannot leave component instance". (The bindings' runtime
// pauses only the adapter's monotonic clock around its allocations.) So automatic
// collection is off, and each call of the accumulator first collects when the heap has
// grown since the last collection by as much as was live after it (what GOGC=100 does),
// and by at least minGrowth.
func init() {
	debug.SetGCPercent(-1)
}

const minGrowth = 4 << 20

var (
	allocated = []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	live      = []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	// The value of /gc/heap/allocs:bytes at which to collect next.
	collectAt uint64 = minGrowth
)

// collect runs a collection when the heap has grown enough since the last one.
func collect() {
	metrics.Read(allocated)
	if allocated[0].Value.Uint64() < collectAt {
		return
	}
	runtime.GC()
	metrics.Read(allocated)
	metrics.Read(live)
	collectAt = allocated[0].Value.Uint64() + max(live[0].Value.Uint64(), minGrowth)
}
