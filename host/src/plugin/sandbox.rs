//! What a plugin instance may touch: WASI with no files, environment or network, a
//! memory cap, and a bounded capture of what it prints.

use std::sync::{Arc, Mutex};

use wasmtime::component::ResourceTable;
use wasmtime::ResourceLimiter;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

/// How many bytes of a plugin's stdout/stderr are kept for error messages.
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
}

impl HostState {
    /// A state granting nothing but clocks, random numbers and captured stdio.
    pub(crate) fn new(limits: SandboxLimits) -> Self {
        let output = CapturedOutput::default();
        let wasi = WasiCtxBuilder::new()
            .stdout(output.clone())
            .stderr(output.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        Self {
            wasi,
            table: ResourceTable::new(),
            limiter: MemoryLimiter::new(limits.memory_bytes),
            output,
        }
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

/// The first [`CAPTURED_OUTPUT_BYTES`] bytes a plugin writes to stdout or stderr; the rest
/// is discarded. Writing never fails, so a chatty plugin is not broken by the capture.
#[derive(Debug, Clone, Default)]
pub(crate) struct CapturedOutput {
    bytes: Arc<Mutex<Vec<u8>>>,
}

impl CapturedOutput {
    /// What was captured, as text, trimmed; empty if nothing was written.
    pub(crate) fn text(&self) -> String {
        let bytes = self.bytes.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes).trim().to_string()
    }

    fn append(&self, data: &[u8]) {
        if let Ok(mut bytes) = self.bytes.lock() {
            let room = CAPTURED_OUTPUT_BYTES.saturating_sub(bytes.len());
            bytes.extend_from_slice(&data[..data.len().min(room)]);
        }
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
