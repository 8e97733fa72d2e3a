//! A plugin as a streaming accumulator: the window operator's slots are the plugin's
//! group ids, and each batch is one call.

use std::sync::Arc;

use arrow::array::{ArrayRef, BinaryArray};

use super::columns::ArgColumn;
use super::instance::PluginInstance;
use super::load::Plugin;
use crate::aggregate::GroupAccumulator;
use crate::error::{Error, Result};

/// Slot-based accumulator backed by one plugin instance.
#[derive(Debug)]
pub(crate) struct PluginAccumulator {
    plugin: Arc<Plugin>,
    instance: PluginInstance,
}

impl PluginAccumulator {
    /// A fresh instance of `plugin`.
    pub(crate) fn new(plugin: Arc<Plugin>) -> Result<Self> {
        let instance = PluginInstance::new(&plugin)?;
        Ok(Self { plugin, instance })
    }

    fn total(&self, num_slots: usize) -> Result<u32> {
        u32::try_from(num_slots).map_err(|_| Error::Plugin {
            plugin: self.plugin.name().to_string(),
            function: "update".into(),
            message: format!("{num_slots} groups exceed the 2^32 a plugin can address"),
        })
    }
}

impl GroupAccumulator for PluginAccumulator {
    fn update(&mut self, args: &[ArrayRef], slots: &[u32], num_slots: usize) -> Result<()> {
        if slots.is_empty() {
            return Ok(());
        }
        let info = self.plugin.info();
        let columns = args
            .iter()
            .zip(&info.args)
            .map(|(array, &to)| ArgColumn::new(array, to))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|message| Error::Plugin {
                plugin: info.name.clone(),
                function: "update".into(),
                message,
            })?;
        let total = self.total(num_slots)?;
        let params: Vec<_> = columns.iter().map(ArgColumn::as_param).collect();
        self.instance.update(slots, total, &params)
    }

    fn evaluate(&mut self, slots: &[u32]) -> Result<ArrayRef> {
        self.instance.evaluate(slots)
    }

    fn state(&mut self, slots: &[u32]) -> Result<BinaryArray> {
        self.instance.state(slots)
    }

    fn merge(&mut self, states: &BinaryArray, slots: &[u32], num_slots: usize) -> Result<()> {
        let total = self.total(num_slots)?;
        self.instance.merge(slots, total, states)
    }

    fn size(&self) -> usize {
        self.instance.memory_bytes()
    }
}
