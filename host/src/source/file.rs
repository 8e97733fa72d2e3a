//! A file source: opening a file at a checkpoint's byte offset, checked against the
//! identity (device, inode, checksum of the bytes before the offset) the checkpoint
//! recorded, and read to its length at open by the decoder threads' ranges or the caller.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use super::file_input::{device_and_inode, read_file_at, ReadChecksum};
use super::line_source::LineSource;
use crate::checkpoint::{check_prefix, FileIdentity, RunningChecksum, SourcePosition};
use crate::error::{Error, Result};
use crate::sql::SourceDef;

impl LineSource {
    /// Opens source `def`'s file `path` to read on from `position` (a byte offset and
    /// line; `Start` for the beginning); `batch_size` applies unless the source sets its
    /// own. A file is checked against the `identity` the checkpoint recorded: one whose
    /// bytes before the offset changed is refused, saying so.
    pub fn open_file(
        def: &SourceDef,
        path: &Path,
        batch_size: usize,
        position: &SourcePosition,
        identity: Option<&FileIdentity>,
    ) -> Result<Self> {
        let context = || format!("cannot open source '{}' file {}", def.name, path.display());
        let mut file = File::open(path).map_err(|e| Error::io(context(), e))?;
        let ranges = file.try_clone().map_err(|e| Error::io(context(), e))?;
        let (offset, line) = match position {
            SourcePosition::File { offset, line } => (*offset, *line),
            _ => (0, 0),
        };
        let meta = file.metadata().map_err(|e| Error::io(context(), e))?;
        let (device, inode) = device_and_inode(&meta);
        let changed = |what: String| {
            Error::Execution(format!(
                "source '{}' file {} is not the one the checkpoint read: {what}; restore it, or remove the state dir to start over",
                def.name,
                path.display()
            ))
        };
        let checksum = match identity {
            Some(recorded) if offset > 0 => {
                check_prefix(recorded, (device, inode), meta.len(), |buf, at| {
                    read_file_at(&file, buf, at)
                })
                .map_err(changed)?
            }
            _ if meta.len() < offset => {
                return Err(changed(format!(
                    "it holds {} bytes, fewer than the {offset} the checkpoint read",
                    meta.len()
                )))
            }
            _ => {
                let mut sum = RunningChecksum::default();
                sum.extend_to(offset, |buf, at| read_file_at(&file, buf, at))
                    .map_err(|e| Error::io(context(), e))?;
                sum
            }
        };
        let read_so_far = ReadChecksum {
            file: file.try_clone().map_err(|e| Error::io(context(), e))?,
            checksum,
            device,
            inode,
        };
        if offset > 0 {
            file.seek(SeekFrom::Start(offset))
                .map_err(|e| Error::io(context(), e))?;
        }
        // The file as long as it is now, as the decoder threads' ranges read it:
        // rows appended while the run goes on are read by the next run, whatever
        // the thread count.
        let mut source = Self::from_reader(
            def,
            Box::new(file.take(meta.len().saturating_sub(offset))),
            path.display().to_string(),
            false,
            batch_size,
        );
        source.start_at(offset, line);
        source.first_chunk = offset == 0;
        source.file = Some(ranges);
        source.file_len = meta.len();
        source.read_so_far = Some(read_so_far);
        Ok(source)
    }
}
