// Functional check of geomean aggregate components without the Laminar host: transpiles
// each component with jco, runs it under Node and checks the laminar:udaf contract
// (describe, group ids, NULL skipping, evaluate resets, state bytes, merge, errors).
// Given several components (say the Python and the JavaScript builds), it also checks that
// they write the same states and merge each other's states.
//
//   node check.mjs [--bench] COMPONENT.wasm...
//
// Prints one line per check and closes with "N passed, N failed"; exits 1 on a failure.
// --bench also times `update` under Node's Wasm engine (V8, not Wasmtime: indicative only).

import { spawnSync } from "node:child_process";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { transpile } from "@bytecodealliance/jco";

// componentize-py components use Wasm extended constant expressions, on by default from
// Node 21; Node 20 needs a V8 flag, so rerun under it.
const extendedConst = "--experimental-wasm-extended-const";
if (Number(process.versions.node.split(".")[0]) < 21 && !process.execArgv.includes(extendedConst)) {
  const { status } = spawnSync(
    process.execPath,
    [...process.execArgv, extendedConst, fileURLToPath(import.meta.url), ...process.argv.slice(2)],
    { stdio: "inherit" },
  );
  process.exit(status ?? 1);
}

const here = dirname(fileURLToPath(import.meta.url));
// Inside node_modules so the transpiled code resolves @bytecodealliance/preview2-shim.
const cacheDir = join(here, "node_modules", ".cache", "laminar-check");

let passed = 0;
let failed = 0;

function check(label, ok, detail = "") {
  if (ok) {
    passed++;
    console.log(`ok   ${label}`);
  } else {
    failed++;
    console.log(`FAIL ${label}${detail ? `: ${detail}` : ""}`);
  }
}

function close(a, b) {
  return Math.abs(a - b) <= 1e-12 * Math.max(1, Math.abs(a), Math.abs(b));
}

/** The error a call returned as `err(message)`, or null when it succeeded. */
function errorOf(call) {
  try {
    call();
    return null;
  } catch (e) {
    return typeof e?.payload === "string" ? e.payload : `not a result error: ${e}`;
  }
}

function f64Column(values, validity) {
  return { data: { tag: "float64", val: Float64Array.from(values) }, validity };
}

function isValid(column, row) {
  return column.validity == null || ((column.validity[row >> 3] >> (row & 7)) & 1) === 1;
}

/**
 * Decodes state bytes as the Rust SDK's `(f64, u64)` state: per group, 16 bytes little-endian,
 * the f64 sum of logarithms then the u64 count. Null when the layout is wrong.
 */
function decodeStates(states, groups) {
  const { offsets, data } = states;
  if (offsets.length !== groups + 1 || data.length !== 16 * groups) {
    return null;
  }
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const out = [];
  for (let i = 0; i < groups; i++) {
    if (offsets[i] !== 16 * i || offsets[i + 1] !== 16 * (i + 1)) {
      return null;
    }
    out.push([view.getFloat64(16 * i, true), view.getBigUint64(16 * i + 8, true)]);
  }
  return out;
}

/**
 * Whether decoded states match: counts exactly, sums within rounding (the languages' `ln`
 * may differ in the last bit: Math.log(3) in JS is one ulp below CPython's math.log(3)).
 */
function sameStates(a, b) {
  return a !== null && b !== null && a.length === b.length &&
    a.every(([sum, count], i) => count === b[i][1] && close(sum, b[i][0]));
}

const show = (states) => JSON.stringify(states, (_, v) => (typeof v === "bigint" ? `${v}` : v));

async function load(path) {
  const name = basename(path).replace(/\.wasm$/, "");
  const { files } = await transpile(await readFile(path), { name, quiet: true, noTypescript: true });
  const dir = join(cacheDir, name);
  await rm(dir, { recursive: true, force: true });
  for (const [file, bytes] of Object.entries(files)) {
    await mkdir(dirname(join(dir, file)), { recursive: true });
    await writeFile(join(dir, file), bytes);
  }
  const module = await import(pathToFileURL(join(dir, `${name}.js`)).href);
  return module.aggregate ?? module["laminar:udaf/aggregate@0.1.0"];
}

function checkOne(name, aggregate) {
  const t = (label) => `${name}: ${label}`;

  const sig = aggregate.describe();
  check(
    t("describe"),
    sig.name === "geomean" && sig.args.length === 1 && sig.args[0] === "float64" &&
      sig.returns === "float64" && sig.stateVersion === 1,
    JSON.stringify(sig),
  );

  // Rows (group, x): (0, 2) (1, 3) (0, 8) (1, NULL) (2, -4) (0, 0) (3, 5): row 3 is NULL
  // (its value 100 must be ignored), -4 and 0 are skipped.
  const acc = new aggregate.Accumulator();
  acc.update(
    Uint32Array.from([0, 1, 0, 1, 2, 0, 3]),
    4,
    [f64Column([2, 3, 8, 100, -4, 0, 5], Uint8Array.from([0b1110111]))],
  );
  // A batch without a validity bitmap.
  acc.update(Uint32Array.from([3, 3]), 4, [f64Column([5, 5])]);

  const state = decodeStates(acc.state(Uint32Array.from([0, 1, 2, 3, 9])), 5);
  const expected = [
    [Math.log(2) + Math.log(8), 2n],
    [Math.log(3), 1n],
    [0, 0n],
    [3 * Math.log(5), 3n],
    [0, 0n], // id 9 was never used: the empty state
  ];
  check(t("state: 16 bytes per group, (f64 sum, u64 count) little-endian"),
    sameStates(state, expected), show(state));

  const result = acc.evaluate(Uint32Array.from([0, 1, 2, 3]));
  const values = result.data.val;
  check(
    t("evaluate: geomean per group, NULL for an empty group"),
    result.data.tag === "float64" && values.length === 4 &&
      close(values[0], 4) && close(values[1], 3) && close(values[3], 5) &&
      isValid(result, 0) && isValid(result, 1) && !isValid(result, 2) && isValid(result, 3),
    `${Array.from(values)} validity ${result.validity && Array.from(result.validity)}`,
  );

  const again = acc.evaluate(Uint32Array.from([0, 2]));
  check(t("evaluate resets the groups"), !isValid(again, 0) && !isValid(again, 1));

  const allValid = acc.evaluate(Uint32Array.from([]));
  check(t("evaluate of no groups"), allValid.data.val.length === 0);

  // Merge: states of groups 0 and 1 into groups 1 and 0 of a fresh accumulator.
  const source = new aggregate.Accumulator();
  source.update(Uint32Array.from([0, 0, 1]), 2, [f64Column([2, 8, 3])]);
  const moved = source.state(Uint32Array.from([0, 1]));
  const target = new aggregate.Accumulator();
  target.update(Uint32Array.from([0]), 1, [f64Column([27])]);
  target.merge(Uint32Array.from([1, 0]), 2, moved);
  const merged = target.evaluate(Uint32Array.from([0, 1]));
  check(t("merge adds states into groups"),
    close(merged.data.val[0], 9) && close(merged.data.val[1], 4) && merged.validity == null,
    `${Array.from(merged.data.val)}`);

  const bad = new aggregate.Accumulator();
  const errors = [
    ["two arguments", () => bad.update([0], 1, [f64Column([1]), f64Column([1])])],
    ["an int64 argument", () =>
      bad.update([0], 1, [{ data: { tag: "int64", val: BigInt64Array.from([1n]) }, validity: undefined }])],
    ["fewer values than group ids", () => bad.update([0, 0], 1, [f64Column([1])])],
    ["a group id not below total-groups", () => bad.update([0, 5], 2, [f64Column([1, 1])])],
    ["a short validity bitmap", () => bad.update(new Array(9).fill(0), 1,
      [f64Column(new Array(9).fill(1), Uint8Array.from([255]))])],
    ["evaluate of an unknown group", () => bad.evaluate([7])],
    ["merge of truncated state bytes", () =>
      bad.merge([0], 1, { offsets: Uint32Array.from([0, 8]), data: new Uint8Array(8) })],
    ["merge with too few states", () =>
      bad.merge([0, 0], 1, { offsets: Uint32Array.from([0, 16]), data: new Uint8Array(16) })],
  ];
  for (const [label, call] of errors) {
    const message = errorOf(call);
    check(t(`err for ${label}`), message !== null && !message.startsWith("not a result"),
      message ?? "no error");
  }
  // Still usable after errors (nothing trapped).
  bad.update([0], 1, [f64Column([16])]);
  check(t("usable after errors"), close(bad.evaluate([0]).data.val[0], 16));
}

function checkInterop(components) {
  const states = components.map(([name, aggregate]) => {
    const acc = new aggregate.Accumulator();
    acc.update(Uint32Array.from([0, 1, 0, 1]), 3, [f64Column([1.5, 2.5, 1e300, 7], Uint8Array.from([0b0111]))]);
    return [name, acc.state(Uint32Array.from([0, 1, 2]))];
  });
  const [firstName, first] = states[0];
  for (const [name, state] of states.slice(1)) {
    check(`${firstName} and ${name} write the same states`,
      sameStates(decodeStates(state, 3), decodeStates(first, 3)));
  }
  for (const [name, aggregate] of components) {
    for (const [fromName, state] of states) {
      const acc = new aggregate.Accumulator();
      acc.merge(Uint32Array.from([0, 1, 2]), 3, state);
      const out = acc.evaluate(Uint32Array.from([0, 1, 2]));
      check(`${name} merges states of ${fromName}`,
        close(out.data.val[0], Math.sqrt(1.5 * 1e300)) && close(out.data.val[1], 2.5) &&
          !isValid(out, 2));
    }
  }
}

function bench(name, aggregate) {
  const rows = 8192;
  const batches = 100;
  const groups = 1024;
  const ids = new Uint32Array(rows);
  const values = new Float64Array(rows);
  for (let i = 0; i < rows; i++) {
    ids[i] = (i * 7919) % groups;
    values[i] = 1 + (i % 97);
  }
  const args = [{ data: { tag: "float64", val: values }, validity: undefined }];
  const acc = new aggregate.Accumulator();
  acc.update(ids, groups, args); // warm up
  const start = process.hrtime.bigint();
  for (let b = 0; b < batches; b++) {
    acc.update(ids, groups, args);
  }
  const ns = Number(process.hrtime.bigint() - start);
  console.log(`bench ${name}: update ${(ns / (rows * batches)).toFixed(1)} ns/row ` +
    `(${batches} batches of ${rows} rows, ${groups} groups, Node/V8)`);
}

const args = process.argv.slice(2);
const doBench = args.includes("--bench");
const paths = args.filter((a) => a !== "--bench");
if (paths.length === 0) {
  console.error("usage: node check.mjs [--bench] COMPONENT.wasm...");
  process.exit(2);
}

const components = [];
for (const path of paths) {
  const name = basename(path);
  const aggregate = await load(resolve(path));
  components.push([name, aggregate]);
  checkOne(name, aggregate);
}
if (components.length > 1) {
  checkInterop(components);
}
if (doBench) {
  for (const [name, aggregate] of components) {
    bench(name, aggregate);
  }
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
