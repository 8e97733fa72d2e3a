//! Window assigners: which event-time window an event belongs to.

mod tumbling;

pub use tumbling::TumblingWindow;
