//! [`FileIdentity`]: what a checkpoint records to recognise a source or sink file on
//! recovery, so that a file edited, cut or replaced since is refused with what changed
//! instead of being read from a byte that may no longer start a line, or cut and appended
//! to. The checksum covers every byte before the recorded length; it is kept up as the
//! file is read or written, so a checkpoint adds only the bytes since the last one, and a
//! restart reads the prefix once to check it.

use std::io;

use rkyv::{Archive, Deserialize, Serialize};

/// A file as a checkpoint saw it: its first `len` bytes and where it lived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct FileIdentity {
    /// Bytes covered: the source's read offset, or the sink's length.
    pub len: u64,
    /// CRC-32C of the first `len` bytes.
    pub crc32c: u32,
    /// The device and inode the file had (both 0 where they are not known): named in
    /// messages; the bytes decide whether a file is the same.
    pub device: u64,
    /// See `device`.
    pub inode: u64,
}

impl From<&ArchivedFileIdentity> for FileIdentity {
    fn from(a: &ArchivedFileIdentity) -> Self {
        Self {
            len: a.len.to_native(),
            crc32c: a.crc32c.to_native(),
            device: a.device.to_native(),
            inode: a.inode.to_native(),
        }
    }
}

/// A checksum of a file's bytes from its start, extended as more of it is read or written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct RunningChecksum {
    /// Bytes covered.
    pub(crate) len: u64,
    /// CRC-32C of them.
    pub(crate) crc32c: u32,
}

/// Bytes read at a time when a prefix is checksummed.
const BLOCK: usize = 1 << 20;

impl RunningChecksum {
    /// Adds the next bytes.
    pub(crate) fn extend(&mut self, bytes: &[u8]) {
        self.crc32c = crc32c::crc32c_append(self.crc32c, bytes);
        self.len += bytes.len() as u64;
    }

    /// Extends the checksum through byte `to` of a file read with `read_at` (which returns
    /// the bytes read at an offset, 0 at the end); a file shorter than `to` is an error.
    pub(crate) fn extend_to(
        &mut self,
        to: u64,
        mut read_at: impl FnMut(&mut [u8], u64) -> io::Result<usize>,
    ) -> io::Result<()> {
        let mut buf =
            vec![0; BLOCK.min(usize::try_from(to.saturating_sub(self.len)).unwrap_or(BLOCK))];
        while self.len < to {
            let want = buf
                .len()
                .min(usize::try_from(to - self.len).unwrap_or(BLOCK));
            let read = read_at(&mut buf[..want], self.len)?;
            if read == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("the file ends at byte {}, before byte {to}", self.len),
                ));
            }
            self.extend(&buf[..read]);
        }
        Ok(())
    }

    /// The identity of a file whose first `len` bytes this covers.
    pub(crate) fn identity(&self, device: u64, inode: u64) -> FileIdentity {
        FileIdentity {
            len: self.len,
            crc32c: self.crc32c,
            device,
            inode,
        }
    }
}

/// Checks that a file holds what a checkpoint saw (`recorded`) in its first bytes;
/// returns the running checksum there, or what changed in words.
pub(crate) fn check_prefix(
    recorded: &FileIdentity,
    now: (u64, u64),
    file_len: u64,
    read_at: impl FnMut(&mut [u8], u64) -> io::Result<usize>,
) -> Result<RunningChecksum, String> {
    let other = now != (recorded.device, recorded.inode) && recorded.inode != 0 && now != (0, 0);
    let what = if other {
        format!(
            "it is another file now (inode {} then, {} now)",
            recorded.inode, now.1
        )
    } else {
        "it was changed".to_string()
    };
    if file_len < recorded.len {
        return Err(format!(
            "{what}: it holds {file_len} bytes, fewer than the {} the checkpoint covers",
            recorded.len
        ));
    }
    let mut sum = RunningChecksum::default();
    sum.extend_to(recorded.len, read_at)
        .map_err(|e| format!("cannot read its first {} bytes: {e}", recorded.len))?;
    if sum.crc32c != recorded.crc32c {
        return Err(format!(
            "{what}: its first {} bytes are not the ones the checkpoint covers",
            recorded.len
        ));
    }
    Ok(sum)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(bytes: &[u8]) -> impl FnMut(&mut [u8], u64) -> io::Result<usize> + '_ {
        move |buf, at| {
            let at = (at as usize).min(bytes.len());
            let n = buf.len().min(bytes.len() - at);
            buf[..n].copy_from_slice(&bytes[at..at + n]);
            Ok(n)
        }
    }

    #[test]
    fn a_running_checksum_equals_one_over_the_whole_prefix() {
        let bytes: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7) as u8).collect();
        let mut running = RunningChecksum::default();
        running.extend(&bytes[..10]);
        running.extend_to(2_500_000, reader(&bytes)).unwrap();
        let mut whole = RunningChecksum::default();
        whole.extend(&bytes[..2_500_000]);
        assert_eq!(running, whole);
        assert!(RunningChecksum::default()
            .extend_to(3_000_001, reader(&bytes))
            .is_err());
    }

    #[test]
    fn a_changed_prefix_is_named() {
        let bytes = b"ts,k\n1,2\n3,4\n".to_vec();
        let mut sum = RunningChecksum::default();
        sum.extend(&bytes[..9]);
        let recorded = sum.identity(1, 42);
        let same = check_prefix(&recorded, (1, 42), bytes.len() as u64, reader(&bytes));
        assert_eq!(same.unwrap(), sum);
        let mut edited = bytes.clone();
        edited[6] = b'9';
        let err = check_prefix(&recorded, (1, 42), 13, reader(&edited)).unwrap_err();
        assert!(
            err.contains("it was changed") && err.contains("first 9 bytes"),
            "{err}"
        );
        let err = check_prefix(&recorded, (1, 43), 13, reader(&edited)).unwrap_err();
        assert!(
            err.contains("another file now (inode 42 then, 43 now)"),
            "{err}"
        );
        let err = check_prefix(&recorded, (1, 42), 4, reader(&bytes[..4])).unwrap_err();
        assert!(err.contains("fewer than the 9"), "{err}");
        // Another file with the same bytes is the same input.
        assert!(check_prefix(&recorded, (1, 43), 13, reader(&bytes)).is_ok());
    }
}
