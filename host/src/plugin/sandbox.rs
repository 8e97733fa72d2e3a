//! What a plugin instance may touch: WASI with no files, environment or network, a
//! virtual clock and a seeded random source ([`super::clock`]), a memory cap, and a
//! bounded capture of what it prints (its beginning and its end).

use std::sync::{Arc, Mutex};

use wasmtime::component::ResourceTable;
use wasmtime::ResourceLimiter;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::clock::{SeededRandom, SleepBudget, VirtualClock, RANDOM_SEED};

/// How many bytes of the beginning and of the end of a plugin's stdout/stderr are kept for
/// error messages (each).
pub(crate) const CAPTURED_OUTPUT_BYTES: usize = 1024;

/// Limits applied to every plugin instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SandboxLimits {
    /// Most bytes of linear memory (all memories of the instance together).
    pub memory_bytes: usize,
    /// Longest a single call into the plugin may run, in milliseconds.
    pub call_timeout_ms: u64,
}

impl Default for SandboxLimits {
    /// 64 MiB of memory and 10 s per call.
    fn default() -> Self {
        Self {
            memory_bytes: 64 << 20,
            call_timeout_ms: 10_000,
        }
    }
}

/// The host side of one plugin instance's store.
pub(crate) struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limiter: MemoryLimiter,
    pub(crate) output: CapturedOutput,
    /// The instance's virtual time (both WASI clocks read it).
    pub(crate) clock: VirtualClock,
    /// How long the current call has slept on the virtual clock.
    pub(crate) sleep: SleepBudget,
    /// The per-call time limit, which also bounds virtual sleeping.
    pub(crate) call_timeout_ms: u64,
}

impl HostState {
    /// A state granting nothing but a virtual clock, seeded random numbers and captured
    /// stdio.
    pub(crate) fn new(limits: SandboxLimits) -> Self {
        let output = CapturedOutput::default();
        let clock = VirtualClock::default();
        let wasi = WasiCtxBuilder::new()
            .stdout(output.clone())
            .stderr(output.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .wall_clock(clock.clone())
            .monotonic_clock(clock.clone())
            .secure_random(SeededRandom::new(RANDOM_SEED))
            .insecure_random(SeededRandom::new(RANDOM_SEED ^ 1))
            .insecure_random_seed(u128::from(RANDOM_SEED))
            .build();
        Self {
            wasi,
            table: ResourceTable::new(),
            limiter: MemoryLimiter::new(limits.memory_bytes),
            output,
            clock,
            sleep: SleepBudget::default(),
            call_timeout_ms: limits.call_timeout_ms,
        }
    }

    /// The store's resource table (host resources such as pollables live there).
    pub(crate) fn table(&mut self) -> &mut ResourceTable {
        &mut self.table
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Caps the linear memory of an instance and remembers when a plugin hit the cap, so the
/// error can say so instead of showing a bare trap.
#[derive(Debug)]
pub(crate) struct MemoryLimiter {
    limit: usize,
    /// Bytes of linear memory currently allocated (largest memory seen).
    pub(crate) current: usize,
    /// The size a refused growth asked for.
    pub(crate) refused: Option<usize>,
}

impl MemoryLimiter {
    fn new(limit: usize) -> Self {
        Self {
            limit,
            current: 0,
            refused: None,
        }
    }

    /// The configured cap in bytes.
    pub(crate) fn limit(&self) -> usize {
        self.limit
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let others = self.current.saturating_sub(current);
        if others.saturating_add(desired) > self.limit {
            self.refused = Some(desired);
            return Err(wasmtime::format_err!(
                "memory limit of {} MiB exceeded: the plugin asked for {} MiB",
                self.limit >> 20,
                desired.div_ceil(1 << 20)
            ));
        }
        self.current = others + desired;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }

    fn instances(&self) -> usize {
        // A component is several core instances (the guest, its WASI adapter, shims).
        64
    }

    fn tables(&self) -> usize {
        64
    }

    fn memories(&self) -> usize {
        16
    }
}

/// The first and the last [`CAPTURED_OUTPUT_BYTES`] bytes a plugin writes to stdout or
/// stderr, and how many bytes between them were discarded. Writing never fails, so a
/// chatty plugin is not broken by the capture.
#[derive(Debug, Clone, Default)]
pub(crate) struct CapturedOutput {
    bytes: Arc<Mutex<Captured>>,
}

#[derive(Debug, Default)]
struct Captured {
    head: Vec<u8>,
    /// Bytes after the head; trimmed to the last [`CAPTURED_OUTPUT_BYTES`] as it grows.
    tail: Vec<u8>,
    /// Bytes dropped from the front of the tail.
    dropped: u64,
}

impl CapturedOutput {
    /// What was captured, as text, trimmed; empty if nothing was written. When bytes were
    /// discarded, a note between the beginning and the end says how many.
    pub(crate) fn text(&self) -> String {
        let Ok(captured) = self.bytes.lock() else {
            return String::new();
        };
        // The tail holds up to twice what is kept (it is trimmed in steps): show the last
        // CAPTURED_OUTPUT_BYTES of it.
        let cut = captured.tail.len().saturating_sub(CAPTURED_OUTPUT_BYTES);
        let dropped = captured.dropped + cut as u64;
        let head = String::from_utf8_lossy(&captured.head);
        let tail = String::from_utf8_lossy(&captured.tail[cut..]);
        let text = if dropped == 0 {
            format!("{head}{tail}")
        } else {
            format!("{head} [… {dropped} bytes of output left out …] {tail}")
        };
        text.trim().to_string()
    }

    fn append(&self, mut data: &[u8]) {
        let Ok(mut captured) = self.bytes.lock() else {
            return;
        };
        let room = CAPTURED_OUTPUT_BYTES.saturating_sub(captured.head.len());
        let (into_head, rest) = data.split_at(data.len().min(room));
        captured.head.extend_from_slice(into_head);
        data = rest;
        if data.len() > CAPTURED_OUTPUT_BYTES {
            let skip = data.len() - CAPTURED_OUTPUT_BYTES;
            captured.dropped += (skip + captured.tail.len()) as u64;
            captured.tail.clear();
            data = &data[skip..];
        }
        captured.tail.extend_from_slice(data);
        if captured.tail.len() > 2 * CAPTURED_OUTPUT_BYTES {
            let excess = captured.tail.len() - CAPTURED_OUTPUT_BYTES;
            captured.tail.drain(..excess);
            captured.dropped += excess as u64;
        }
    }

    /// The kept bytes, for tests: (head, last bytes of the tail).
    #[cfg(test)]
    fn kept(&self) -> (Vec<u8>, Vec<u8>, u64) {
        let c = self.bytes.lock().unwrap();
        let start = c.tail.len().saturating_sub(CAPTURED_OUTPUT_BYTES);
        (c.head.clone(), c.tail[start..].to_vec(), c.dropped)
    }
}

impl IsTerminal for CapturedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CapturedOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CapturedOutput {
    async fn ready(&mut self) {}
}

impl OutputStream for CapturedOutput {
    fn write(&mut self, bytes: bytes::Bytes) -> StreamResult<()> {
        self.append(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

impl tokio::io::AsyncWrite for CapturedOutput {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.append(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_keeps_its_beginning_and_its_end() {
        let output = CapturedOutput::default();
        output.append(b"first line\n");
        for _ in 0..10_000 {
            output.append(&[b'.'; 100]);
        }
        output.append(b"\npanicked: the end");
        let text = output.text();
        assert!(text.starts_with("first line"), "{text}");
        assert!(text.ends_with("panicked: the end"), "{text}");
        assert!(text.contains("bytes of output left out"), "{text}");
        assert!(text.len() < 3 * CAPTURED_OUTPUT_BYTES, "{}", text.len());
        let (head, tail, dropped) = output.kept();
        let written = 11 + 1_000_000 + 18;
        let kept_tail = output.bytes.lock().unwrap().tail.len();
        assert_eq!(head.len() + kept_tail + dropped as usize, written);
        assert!(tail.ends_with(b"the end"));

        // One big write is trimmed the same way.
        let big = CapturedOutput::default();
        let mut data = vec![b'a'; 5000];
        data.extend_from_slice(b"z");
        big.append(&data);
        assert!(big.text().ends_with("az"));
        assert!(big.text().contains("2953 bytes"), "{}", big.text());
    }
}
