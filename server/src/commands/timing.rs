//! How the CLI's latency commands time networks: the runtime (our engine or
//! onnxruntime, loaded here) and the basis (relative to the device
//! reference, kept beside the host's latency lock as workers keep it, or
//! absolute).

use std::sync::Arc;

use anyhow::Context;
use worker::host::gate::{self, HostGate};
use worker::latency::{onnxruntime, LatencyConfig, Meter, References, Runtime};

use crate::cli::{Basis, BasisArgs, OnnxRuntimeArgs};

/// Loads onnxruntime when a library is configured (flag, `NAS_ONNXRUNTIME`
/// or `ORT_DYLIB_PATH`). A library that does not load is an error naming the
/// path tried; none configured is `Ok(None)`.
pub fn load_onnxruntime(args: &OnnxRuntimeArgs) -> anyhow::Result<Option<onnxruntime::Loaded>> {
    let Some(path) = onnxruntime::configured_path(args.library.as_deref()) else {
        return Ok(None);
    };
    let loaded = onnxruntime::load(&path)?;
    tracing::info!(path = %loaded.path.display(), version = %loaded.version, "onnxruntime loaded");
    Ok(Some(loaded))
}

/// What a worker process says about onnxruntime when it starts: where it
/// was loaded from, or how to give it one.
pub fn onnxruntime_status(loaded: Option<&onnxruntime::Loaded>) -> String {
    match loaded {
        Some(l) => format!(
            "onnxruntime {} loaded from {}: searches measured in onnxruntime run here",
            l.version,
            l.path.display()
        ),
        None => format!(
            "onnxruntime: not configured, so searches measured in onnxruntime wait for another worker; \
             give this one the library with --onnxruntime PATH or {}=PATH \
             (e.g. `pip install onnxruntime`, then the libonnxruntime.so.1.* in its capi/ folder)",
            onnxruntime::PATH_ENV
        ),
    }
}

/// This machine's reference bases, beside its latency lock
/// (`NAS_LATENCY_LOCK`), as workers keep them.
fn host_references() -> References {
    References::at(References::file_beside(&HostGate::default_path()))
}

/// The timing a command asked for.
pub struct Timing {
    /// The runtime.
    pub runtime: Runtime,
    /// The host's latency gate.
    pub gate: Option<Arc<HostGate>>,
    /// The device's reference bases (relative basis), or none (absolute).
    pub references: Option<References>,
}

impl Timing {
    /// From the flags: loads onnxruntime if asked for (an error says how
    /// to give it), opens the host gate and the data dir's reference file.
    pub fn from_args(args: &BasisArgs) -> anyhow::Result<Self> {
        let runtime = Runtime::from(args.runtime);
        let loaded = load_onnxruntime(&args.onnxruntime)?;
        if runtime == Runtime::Onnxruntime && loaded.is_none() {
            anyhow::bail!(
                "--runtime onnxruntime needs the onnxruntime library: pass --onnxruntime PATH or set {}",
                onnxruntime::PATH_ENV
            );
        }
        let references = match args.basis {
            Basis::Absolute => None,
            Basis::Relative => Some(host_references()),
        };
        Ok(Self {
            runtime,
            gate: gate::open_or_warn(&HostGate::default_path()),
            references,
        })
    }

    /// Relative timing in our engine (`nas train`).
    pub fn relative() -> Self {
        Self {
            runtime: Runtime::Nas,
            gate: gate::open_or_warn(&HostGate::default_path()),
            references: Some(host_references()),
        }
    }

    /// The meter for `config`.
    pub fn meter(&self, config: LatencyConfig) -> Meter<'_> {
        Meter {
            config,
            gate: self.gate.as_deref(),
            runtime: self.runtime,
            references: self.references.as_ref(),
        }
    }

    /// The basis in force for `threads`, established now if missing (none
    /// on the absolute basis).
    pub fn basis(
        &self,
        threads: usize,
    ) -> anyhow::Result<Option<worker::latency::reference::Basis>> {
        self.references
            .as_ref()
            .map(|r| r.basis(self.runtime, threads, self.gate.as_deref()))
            .transpose()
            .context("establishing the latency reference")
    }
}
