// geomean(x DOUBLE) -> DOUBLE: the geometric mean of the positive values of `x`, as a
// Laminar aggregate plugin (WIT: wit/laminar-udaf.wit, world `udaf`), built into a Wasm
// component with `jco componentize` (see build.sh).
//
// Computed as exp(mean(ln x)): a group's state is (sum of ln x, count) over its rows with
// x > 0; NULL rows and x <= 0 are skipped, and a group with no such row evaluates to NULL.
// State bytes are 16 bytes per group, little-endian: the f64 sum, then the count as u64 —
// the encoding of the Rust SDK's `(f64, u64)` state, so states move freely between the
// Rust, Python and JavaScript builds of geomean.
//
// How jco maps the WIT here: the exported interface `aggregate` is the exported object
// `aggregate`, its resource `accumulator` the class `Accumulator` (constructor = `new`),
// kebab-case names become camelCase (`state-version` -> `stateVersion`), the enum
// `data-type` is a string ("float64"), the variant `column-data` is `{ tag, val }`,
// `list<f64>` / `list<u32>` / `list<u8>` are Float64Array / Uint32Array / Uint8Array,
// `option<T>` is `T | undefined`, and throwing from a function returning `result<_, string>`
// returns `err(message)` to the host.

const NAME = "geomean";
const STATE_BYTES = 16;
const TWO_32 = 4294967296;

/** Thrown as the `err` of a `result<_, string>`: the host gets the message. */
function fail(message) {
  throw message;
}

/** Checks Arrow-style offsets: start at 0, never decrease, end within `dataLength`. */
function checkOffsets(offsets, dataLength) {
  let ok = offsets.length > 0 && offsets[0] === 0 && offsets[offsets.length - 1] <= dataLength;
  for (let i = 1; ok && i < offsets.length; i++) {
    ok = offsets[i - 1] <= offsets[i];
  }
  if (!ok) {
    fail(`malformed offsets (must start at 0, not decrease, and end within ${dataLength} bytes)`);
  }
}

class Accumulator {
  constructor() {
    // Per-group sum of ln x and count; counts stay exact as f64 up to 2^53 rows.
    this.sums = new Float64Array(0);
    this.counts = new Float64Array(0);
    // Number of groups in use (the arrays may be longer: they grow by doubling).
    this.groups = 0;
  }

  /** Grows to `totalGroups` groups if there are fewer. */
  grow(totalGroups) {
    if (totalGroups <= this.groups) {
      return;
    }
    if (totalGroups > this.sums.length) {
      const capacity = Math.max(totalGroups, this.sums.length * 2, 16);
      const sums = new Float64Array(capacity);
      const counts = new Float64Array(capacity);
      sums.set(this.sums.subarray(0, this.groups));
      counts.set(this.counts.subarray(0, this.groups));
      this.sums = sums;
      this.counts = counts;
    }
    this.groups = totalGroups;
  }

  checkIds(groupIds) {
    const groups = this.groups;
    for (let i = 0; i < groupIds.length; i++) {
      if (groupIds[i] >= groups) {
        fail(`group id ${groupIds[i]} is not below the number of groups ${groups}`);
      }
    }
  }

  update(groupIds, totalGroups, args) {
    if (args.length !== 1) {
      fail(`${NAME} takes 1 arguments, got ${args.length}`);
    }
    const { data, validity } = args[0];
    if (data.tag !== "float64") {
      fail(`argument 1 has type ${data.tag}, the aggregate declares float64`);
    }
    const values = data.val;
    const rows = groupIds.length;
    if (values.length !== rows) {
      fail(`argument 1 has ${values.length} values for ${rows} group ids`);
    }
    if (validity != null && validity.length * 8 < rows) {
      fail(`argument 1 has a validity bitmap of ${validity.length} bytes for ${rows} rows`);
    }
    this.grow(totalGroups);
    this.checkIds(groupIds);
    const sums = this.sums;
    const counts = this.counts;
    if (validity == null) {
      for (let i = 0; i < rows; i++) {
        const x = values[i];
        if (x > 0) {
          const g = groupIds[i];
          sums[g] += Math.log(x);
          counts[g] += 1;
        }
      }
    } else {
      for (let i = 0; i < rows; i++) {
        const x = values[i];
        if (x > 0 && (validity[i >>> 3] >>> (i & 7)) & 1) {
          const g = groupIds[i];
          sums[g] += Math.log(x);
          counts[g] += 1;
        }
      }
    }
  }

  evaluate(groupIds) {
    this.checkIds(groupIds);
    const n = groupIds.length;
    const out = new Float64Array(n);
    const validity = new Uint8Array((n + 7) >>> 3);
    let hasNull = false;
    const sums = this.sums;
    const counts = this.counts;
    for (let i = 0; i < n; i++) {
      const g = groupIds[i];
      const count = counts[g];
      if (count > 0) {
        out[i] = Math.exp(sums[g] / count);
        validity[i >>> 3] |= 1 << (i & 7);
      } else {
        hasNull = true;
      }
      // Evaluating resets the group: the host may reuse its id for a new group.
      sums[g] = 0;
      counts[g] = 0;
    }
    return { data: { tag: "float64", val: out }, validity: hasNull ? validity : undefined };
  }

  state(groupIds) {
    const n = groupIds.length;
    const offsets = new Uint32Array(n + 1);
    const data = new Uint8Array(n * STATE_BYTES);
    const view = new DataView(data.buffer);
    for (let i = 0; i < n; i++) {
      const g = groupIds[i];
      const at = i * STATE_BYTES;
      // A group never updated is empty: its state is (0.0, 0).
      if (g < this.groups) {
        const count = this.counts[g];
        view.setFloat64(at, this.sums[g], true);
        view.setUint32(at + 8, count % TWO_32, true);
        view.setUint32(at + 12, Math.floor(count / TWO_32), true);
      }
      offsets[i + 1] = at + STATE_BYTES;
    }
    return { offsets, data };
  }

  merge(groupIds, totalGroups, states) {
    const { offsets, data } = states;
    const n = groupIds.length;
    if (offsets.length !== n + 1) {
      fail(`merge got ${Math.max(offsets.length - 1, 0)} states for ${n} group ids`);
    }
    checkOffsets(offsets, data.length);
    // Check every state before changing any group.
    for (let i = 0; i < n; i++) {
      const length = offsets[i + 1] - offsets[i];
      if (length < STATE_BYTES) {
        fail(`${NAME}: malformed state bytes: state ${i} has ${length} bytes, needs ${STATE_BYTES}`);
      }
    }
    this.grow(totalGroups);
    this.checkIds(groupIds);
    const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    const sums = this.sums;
    const counts = this.counts;
    for (let i = 0; i < n; i++) {
      const at = offsets[i];
      const g = groupIds[i];
      sums[g] += view.getFloat64(at, true);
      counts[g] += view.getUint32(at + 8, true) + view.getUint32(at + 12, true) * TWO_32;
    }
  }
}

export const aggregate = {
  describe() {
    return {
      name: NAME,
      args: ["float64"],
      returns: "float64",
      stateVersion: 1,
    };
  },
  Accumulator,
};
