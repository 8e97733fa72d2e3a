// geomean(x DOUBLE) -> DOUBLE as a Laminar aggregate plugin, written in Go.
//
// The geometric mean of the positive values of `x`, computed as exp(mean(ln x)): a group's
// state is (sum of ln x, count) over its rows with x > 0; NULL rows and x <= 0 are skipped,
// and a group with no such row evaluates to NULL. State bytes are 16 bytes per group,
// little-endian: the f64 sum, then the count as u64 -- the encoding of the Rust SDK's
// `(f64, u64)` state, so states move freely between the Rust, Python, JavaScript and Go
// builds of geomean.
//
// Built for mainline Go (GOOS=wasip1 GOARCH=wasm, -buildmode=c-shared) against the
// bindings `wit-bindgen go` 0.63.0 generates from wit/laminar-udaf.wit (world `udaf`);
// see build.sh. How those bindings map the WIT:
//
//   - The exported interface `aggregate` is this package, `export_laminar_udaf_aggregate`;
//     its types (records, variants, enums) are in package `laminar_udaf_aggregate`.
//   - `describe` is the function Describe; the resource `accumulator` is the struct
//     Accumulator, which must hold the fields `handle int32` and `pinner runtime.Pinner`
//     the generated glue uses; its constructor is MakeAccumulator and its destructor the
//     method OnDrop. kebab-case names are CamelCase.
//   - `list<T>` is a Go slice, `string` a Go string, the enum `data-type` a uint8, a
//     variant a struct with Tag() and one accessor per case, `option<T>` and
//     `result<T, E>` the generic Option and Result of package wit/types.
//   - Arguments are Go slices over memory the glue allocated for the call: they stay
//     valid while referenced (the Go GC owns them), so nothing needs freeing. Returned
//     slices are pinned by the glue until the host has copied them out.
package export_laminar_udaf_aggregate

import (
	"encoding/binary"
	"fmt"
	"math"
	"runtime"

	witTypes "go.bytecodealliance.org/pkg/wit/types"
	wit "wit_component/laminar_udaf_aggregate"
)

const (
	name         = "geomean"
	stateVersion = 1
	stateBytes   = 16
)

type unitResult = witTypes.Result[witTypes.Unit, string]

// Describe returns the aggregate's name and types.
func Describe() wit.Signature {
	return wit.Signature{
		Name:         name,
		Args:         []wit.DataType{wit.DataType_Float64},
		Returns:      wit.DataType_Float64,
		StateVersion: stateVersion,
	}
}

// Accumulator holds per-group sums of ln x and counts, indexed by group id.
type Accumulator struct {
	// Used by the generated glue: the resource handle and the pin that keeps the
	// accumulator alive while the host holds the handle.
	handle int32
	pinner runtime.Pinner

	sums   []float64
	counts []uint64
}

// MakeAccumulator is the resource's constructor: an accumulator with no groups.
func MakeAccumulator() *Accumulator {
	return &Accumulator{}
}

// OnDrop is called when the host drops the accumulator.
func (a *Accumulator) OnDrop() {
	a.sums = nil
	a.counts = nil
}

// grow extends the accumulator to `total` groups if it holds fewer; new groups are empty.
func (a *Accumulator) grow(total uint32) {
	if n := int(total); n > len(a.sums) {
		a.sums = append(a.sums, make([]float64, n-len(a.sums))...)
		a.counts = append(a.counts, make([]uint64, n-len(a.counts))...)
	}
}

// checkIDs fails unless every id is below the number of groups.
func (a *Accumulator) checkIDs(groupIDs []uint32) error {
	for _, g := range groupIDs {
		if int(g) >= len(a.sums) {
			return fmt.Errorf("%s: group id %d is not below the number of groups %d", name, g, len(a.sums))
		}
	}
	return nil
}

func fail(err error) unitResult {
	return witTypes.Err[witTypes.Unit, string](err.Error())
}

// Update adds the logarithms of the positive, non-NULL values to their groups.
func (a *Accumulator) Update(groupIDs []uint32, totalGroups uint32, args []wit.Column) unitResult {
	collect()
	if len(args) != 1 {
		return fail(fmt.Errorf("%s takes 1 argument, got %d", name, len(args)))
	}
	column := args[0]
	if column.Data.Tag() != wit.ColumnData_Float64 {
		return fail(fmt.Errorf("%s: argument 1 has type tag %d, the aggregate declares float64", name, column.Data.Tag()))
	}
	values := column.Data.Float64()
	rows := len(groupIDs)
	if len(values) != rows {
		return fail(fmt.Errorf("%s: argument 1 has %d values for %d group ids", name, len(values), rows))
	}
	validity := column.Validity.SomeOr(nil)
	if column.Validity.IsSome() && len(validity)*8 < rows {
		return fail(fmt.Errorf("%s: the validity bitmap has %d bytes for %d rows", name, len(validity), rows))
	}
	a.grow(totalGroups)
	if err := a.checkIDs(groupIDs); err != nil {
		return fail(err)
	}
	sums, counts := a.sums, a.counts
	for i, x := range values {
		if x > 0 && (validity == nil || validity[i>>3]>>(i&7)&1 != 0) {
			g := groupIDs[i]
			sums[g] += math.Log(x)
			counts[g]++
		}
	}
	return witTypes.Ok[witTypes.Unit, string](witTypes.Unit{})
}

// Evaluate returns the geometric mean of each group (NULL for a group without positive
// values) and resets the groups: the host may reuse their ids.
func (a *Accumulator) Evaluate(groupIDs []uint32) witTypes.Result[wit.Column, string] {
	collect()
	if err := a.checkIDs(groupIDs); err != nil {
		return witTypes.Err[wit.Column, string](err.Error())
	}
	n := len(groupIDs)
	out := make([]float64, n)
	validity := make([]uint8, (n+7)/8)
	nulls := false
	for i, g := range groupIDs {
		if c := a.counts[g]; c > 0 {
			out[i] = math.Exp(a.sums[g] / float64(c))
			validity[i>>3] |= 1 << (i & 7)
		} else {
			nulls = true
		}
		a.sums[g] = 0
		a.counts[g] = 0
	}
	column := wit.Column{Data: wit.MakeColumnDataFloat64(out), Validity: witTypes.None[[]uint8]()}
	if nulls {
		column.Validity = witTypes.Some(validity)
	}
	return witTypes.Ok[wit.Column, string](column)
}

// State returns each group's (sum, count) as 16 little-endian bytes; a group never
// updated is empty: (0.0, 0).
func (a *Accumulator) State(groupIDs []uint32) witTypes.Result[wit.VarBinary, string] {
	collect()
	n := len(groupIDs)
	offsets := make([]uint32, n+1)
	data := make([]uint8, n*stateBytes)
	for i, g := range groupIDs {
		at := i * stateBytes
		if int(g) < len(a.sums) {
			binary.LittleEndian.PutUint64(data[at:], math.Float64bits(a.sums[g]))
			binary.LittleEndian.PutUint64(data[at+8:], a.counts[g])
		}
		offsets[i+1] = uint32(at + stateBytes)
	}
	return witTypes.Ok[wit.VarBinary, string](wit.VarBinary{Offsets: offsets, Data: data})
}

// Merge adds states from State into their groups; an empty state is an empty group.
func (a *Accumulator) Merge(groupIDs []uint32, totalGroups uint32, states wit.VarBinary) unitResult {
	collect()
	n := len(groupIDs)
	offsets, data := states.Offsets, states.Data
	if len(offsets) != n+1 {
		return fail(fmt.Errorf("%s: merge got %d offsets for %d group ids", name, len(offsets), n))
	}
	// Check every state before changing any group.
	if offsets[0] != 0 || int(offsets[n]) > len(data) {
		return fail(fmt.Errorf("%s: malformed offsets", name))
	}
	for i := 0; i < n; i++ {
		start, end := offsets[i], offsets[i+1]
		if end < start {
			return fail(fmt.Errorf("%s: malformed offsets", name))
		}
		if length := end - start; length != 0 && length != stateBytes {
			return fail(fmt.Errorf("%s: malformed state bytes: state %d has %d bytes, needs %d", name, i, length, stateBytes))
		}
	}
	a.grow(totalGroups)
	if err := a.checkIDs(groupIDs); err != nil {
		return fail(err)
	}
	for i, g := range groupIDs {
		start := offsets[i]
		if offsets[i+1] == start {
			continue
		}
		a.sums[g] += math.Float64frombits(binary.LittleEndian.Uint64(data[start:]))
		a.counts[g] += binary.LittleEndian.Uint64(data[start+8:])
	}
	return witTypes.Ok[witTypes.Unit, string](witTypes.Unit{})
}
