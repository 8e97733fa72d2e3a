//! The plugin instance pool: when every slot is taken, creating one more accumulator is a
//! clear error (not a crash), and a slot freed by a finished operator is usable again.
//! A test binary of its own, so no other test competes for the slots.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Float64Array};
use laminar::plugin::{plugin_accumulator, Plugin, MAX_LIVE_INSTANCES};
use laminar_tests::{guest, plugin_options};

#[test]
fn a_full_pool_is_a_clear_error_and_freed_slots_are_reused() {
    let plugin = Plugin::load(&guest("sum"), None, &plugin_options()).expect("sum loads");
    let mut live = Vec::new();
    for i in 0..MAX_LIVE_INSTANCES {
        let acc = plugin_accumulator(Arc::clone(&plugin))
            .unwrap_or_else(|e| panic!("accumulator {i} of {MAX_LIVE_INSTANCES}: {e}"));
        live.push(acc);
    }
    let err = plugin_accumulator(Arc::clone(&plugin))
        .expect_err("one instance more than the pool holds")
        .to_string();
    assert!(err.contains("wasm_sum"), "{err}");
    assert!(err.contains("instantiate"), "{err}");
    assert!(
        err.contains(&format!("at most {MAX_LIVE_INSTANCES} plugin instances")),
        "{err}"
    );

    // A finished operator gives its slot back; the new instance starts empty.
    live.truncate(live.len() - 1);
    let mut acc = plugin_accumulator(Arc::clone(&plugin)).expect("a freed slot is reused");
    let values: ArrayRef = Arc::new(Float64Array::from(vec![1.5, 2.5, 4.0]));
    acc.update(&[values], &[0, 1, 0], 2).expect("update");
    let sums = acc.evaluate(&[0, 1]).expect("evaluate");
    let sums = sums
        .as_any()
        .downcast_ref::<Float64Array>()
        .expect("DOUBLE result");
    assert_eq!(sums.values().as_ref(), [5.5, 2.5]);
}
