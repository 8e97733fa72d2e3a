//! Pinning a core's thread to one CPU with `core_affinity`.

/// Pins the calling thread to the `index`-th CPU this process may run on (wrapping around
/// when there are fewer), or says why it could not.
pub(crate) fn pin_current_thread(index: usize) -> Result<(), String> {
    let ids = core_affinity::get_core_ids()
        .filter(|ids| !ids.is_empty())
        .ok_or_else(|| "the CPUs of this process cannot be listed".to_string())?;
    let id = ids[index % ids.len()];
    if core_affinity::set_for_current(id) {
        Ok(())
    } else {
        Err(format!("cannot pin to CPU {}", id.id))
    }
}
