//! What a file source knows of its file beyond its lines: where it lives (device and
//! inode), the checksum of the bytes read so far that a checkpoint records, reads at an
//! offset, and where its first non-blank line starts.

use std::fs::File;

use super::pipeline::Position;
use crate::checkpoint::RunningChecksum;

/// The checksum of a source file's bytes before the source's position, for the
/// checkpoint to record (see [`FileIdentity`]).
pub(super) struct ReadChecksum {
    pub(super) file: File,
    pub(super) checksum: RunningChecksum,
    pub(super) device: u64,
    pub(super) inode: u64,
}

impl std::fmt::Debug for ReadChecksum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadChecksum")
            .field("checksum", &self.checksum)
            .finish()
    }
}

/// The device and inode of a file (0 where the system has none).
pub(super) fn device_and_inode(meta: &std::fs::Metadata) -> (u64, u64) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        (meta.dev(), meta.ino())
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        (0, 0)
    }
}

/// The offset and line count after the blank lines at `from` in `file`.
pub(super) fn skip_blank_lines(file: &File, from: Position) -> std::io::Result<Position> {
    let (mut offset, mut line) = from;
    let mut buf = vec![0; 64 << 10];
    let mut at = offset;
    loop {
        let read = read_file_at(file, &mut buf, at)?;
        if read == 0 {
            return Ok((offset, line));
        }
        for (i, &byte) in buf[..read].iter().enumerate() {
            if byte == b'\n' {
                offset = at + i as u64 + 1;
                line += 1;
            } else if !byte.is_ascii_whitespace() {
                return Ok((offset, line));
            }
        }
        at += read as u64;
    }
}

/// Reads `file` at `offset`.
pub(super) fn read_file_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    #[cfg(unix)]
    {
        std::os::unix::fs::FileExt::read_at(file, buf, offset)
    }
    #[cfg(windows)]
    {
        std::os::windows::fs::FileExt::seek_read(file, buf, offset)
    }
}
