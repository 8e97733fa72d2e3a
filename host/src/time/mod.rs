//! Event time: extraction from a column, watermark generation and late-event classification.

mod event_time;
mod local;
mod partitions;
mod stage;
mod watermark;

pub use event_time::{event_time_millis, EventTimeColumn};
pub use local::{EventTimeRule, LocalTimes};
pub use partitions::{ArchivedPartitionTime, PartitionTime, PartitionWatermarks};
pub use stage::EventTimeStage;
pub use watermark::{WatermarkGenerator, WatermarkSpec};
