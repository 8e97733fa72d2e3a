//! Window assigners: which event-time windows an event belongs to.

mod spec;
mod tumbling;

pub use spec::WindowSpec;
pub use tumbling::TumblingWindow;
