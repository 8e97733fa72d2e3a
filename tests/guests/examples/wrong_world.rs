//! Fixture `wrong_world`: an ordinary program. Built for `wasm32-wasip2` it is a
//! `wasi:cli/command` component, which exports `wasi:cli/run` and not `laminar:udaf`, so the
//! host must refuse to load it as a plugin.

fn main() {
    println!("hello");
}
