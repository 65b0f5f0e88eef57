//! ONNX Runtime as a latency runtime: the candidate's ONNX export timed in
//! the engine users deploy with.
//!
//! The library is loaded at run time (the `ort` crate's `load-dynamic`:
//! nothing is downloaded or linked at build time) from the path a worker is
//! given (`--onnxruntime`, `NAS_ONNXRUNTIME`), e.g. the
//! `libonnxruntime.so.1.*` inside the `onnxruntime` Python wheel or a
//! system install. Once per process: [`load`] sets it up, [`loaded`] says
//! whether it is. Sessions run on the CPU execution provider with
//! `threads` intra-op threads and one inter-op thread, graph optimisations
//! at their default (all), as `onnxruntime.InferenceSession` does.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::session::Session;
use ort::value::Tensor;
use thiserror::Error;

use super::{Inference, LatencyError};
use crate::net::Network;

/// The environment variable naming the library, besides `--onnxruntime`.
pub const PATH_ENV: &str = "NAS_ONNXRUNTIME";

/// The loaded library: where it came from and its version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    /// The shared library's path.
    pub path: PathBuf,
    /// Its version (`1.32.0`).
    pub version: String,
}

/// Why the library could not be loaded.
#[derive(Debug, Error)]
pub enum LoadError {
    /// The file is missing, is not a shared library, or is too old for the
    /// API this build uses (ONNX Runtime 1.17 or later).
    #[error("onnxruntime could not be loaded from {path}: {message}")]
    Library {
        /// The path tried.
        path: PathBuf,
        /// The loader's reason.
        message: String,
    },
    /// A different library was loaded earlier in this process.
    #[error("onnxruntime is already loaded from {loaded}; cannot load {path} as well")]
    Conflict {
        /// The path asked for.
        path: PathBuf,
        /// The path loaded.
        loaded: PathBuf,
    },
}

struct Runtime {
    loaded: Loaded,
    environment: ort::environment::Environment,
}

static RUNTIME: OnceLock<Runtime> = OnceLock::new();

/// Serialises loads: `ort` keeps the first library it opens for the process.
static LOADING: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Loads the library at `path` (once per process) and returns what was
/// loaded; a clear error names the path when it cannot be.
pub fn load(path: &Path) -> Result<Loaded, LoadError> {
    let _loading = LOADING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(runtime) = RUNTIME.get() {
        return if same_file(&runtime.loaded.path, path) {
            Ok(runtime.loaded.clone())
        } else {
            Err(LoadError::Conflict {
                path: path.to_owned(),
                loaded: runtime.loaded.path.clone(),
            })
        };
    }
    let library_error = |message: String| LoadError::Library {
        path: path.to_owned(),
        message,
    };
    if !path.is_file() {
        return Err(library_error("no such file".into()));
    }
    let builder = ort::init_from(path).map_err(|e| library_error(e.to_string()))?;
    let environment = builder
        .with_name("nas")
        .build()
        .map_err(|e| library_error(e.to_string()))?;
    let version = version_of(&path.to_string_lossy(), ort::info());
    let runtime = RUNTIME.get_or_init(|| Runtime {
        loaded: Loaded {
            path: path.to_owned(),
            version,
        },
        environment,
    });
    Ok(runtime.loaded.clone())
}

/// The library loaded in this process, if any.
pub fn loaded() -> Option<&'static Loaded> {
    RUNTIME.get().map(|r| &r.loaded)
}

/// The library a worker should load: `flag`, else [`PATH_ENV`], else
/// `ORT_DYLIB_PATH` (the `ort` crate's own variable); `None` when none is
/// set.
pub fn configured_path(flag: Option<&Path>) -> Option<PathBuf> {
    flag.filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_owned)
        .or_else(|| {
            [PATH_ENV, "ORT_DYLIB_PATH"]
                .iter()
                .filter_map(std::env::var_os)
                .find(|v| !v.is_empty())
                .map(PathBuf::from)
        })
}

fn same_file(a: &Path, b: &Path) -> bool {
    a == b || std::fs::canonicalize(a).ok() == std::fs::canonicalize(b).ok()
}

/// The library's version: from its file name (`libonnxruntime.so.1.32.0`,
/// `libonnxruntime.1.32.0.dylib`), else from its build string
/// (`git-branch=rel-1.32.0`), else `unknown`.
fn version_of(path: &str, info: &str) -> String {
    let name = path.rsplit('/').next().unwrap_or(path);
    let from_name = name
        .split_once(".so.")
        .map(|(_, v)| v)
        .or_else(|| {
            name.strip_prefix("libonnxruntime.")
                .and_then(|v| v.strip_suffix(".dylib"))
        })
        .filter(|v| v.starts_with("1.") && v.chars().all(|c| c.is_ascii_digit() || c == '.'));
    from_name
        .or_else(|| {
            info.split(|c: char| c == ',' || c.is_whitespace())
                .find_map(|part| part.strip_prefix("git-branch=rel-"))
        })
        .unwrap_or("unknown")
        .to_owned()
}

/// The loaded library, or the error saying how to load it.
fn loaded_runtime() -> Result<&'static Runtime, LatencyError> {
    RUNTIME.get().ok_or_else(|| {
        LatencyError::Runtime(format!(
            "onnxruntime is not loaded in this worker (start it with --onnxruntime PATH or {PATH_ENV})"
        ))
    })
}

/// A network's ONNX export in an ONNX Runtime session, with a fixed batch-1
/// input.
pub struct OrtInference {
    session: Session,
    input_name: String,
    image: Vec<f32>,
    shape: [usize; 4],
}

impl std::fmt::Debug for OrtInference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrtInference")
            .field("input_name", &self.input_name)
            .field("shape", &self.shape)
            .finish_non_exhaustive()
    }
}

impl OrtInference {
    /// Exports `net` to ONNX in memory and opens it in a session with
    /// `threads` intra-op threads. A network ONNX Runtime refuses is an
    /// error carrying its message.
    pub fn new(net: &Network, threads: usize) -> Result<Self, LatencyError> {
        let runtime = loaded_runtime()?;
        let bytes = crate::onnx::to_onnx(net, &[])
            .map_err(|e| LatencyError::Runtime(format!("ONNX export: {e}")))?;
        let input = net.architecture().input;
        Self::open(
            &runtime.environment,
            &bytes,
            [1, input.channels, input.height, input.width],
            threads,
        )
    }

    /// An ONNX model's bytes in a session, fed a fixed input of `shape`
    /// (N x C x H x W).
    pub fn from_model(
        bytes: &[u8],
        shape: [usize; 4],
        threads: usize,
    ) -> Result<Self, LatencyError> {
        let runtime = loaded_runtime()?;
        Self::open(&runtime.environment, bytes, shape, threads)
    }

    fn open(
        environment: &ort::environment::Environment,
        bytes: &[u8],
        shape: [usize; 4],
        threads: usize,
    ) -> Result<Self, LatencyError> {
        let refused =
            |e: String| LatencyError::Runtime(format!("onnxruntime refused the network: {e}"));
        let session = Session::builder(environment)
            .map_err(|e| refused(e.to_string()))?
            .with_intra_threads(threads)
            .map_err(|e| refused(e.to_string()))?
            .with_inter_threads(1)
            .map_err(|e| refused(e.to_string()))?
            .commit_from_memory(bytes)
            .map_err(|e| refused(e.to_string()))?;
        let input_name = session
            .inputs()
            .first()
            .map(|i| i.name().to_owned())
            .ok_or_else(|| refused("the model has no input".into()))?;
        Ok(Self {
            session,
            input_name,
            image: super::fixed_image(shape[1] * shape[2] * shape[3]),
            shape,
        })
    }
}

impl OrtInference {
    /// One run on the fixed input, its outputs handed to `read`.
    fn run<R>(
        &mut self,
        read: impl FnOnce(&ort::session::SessionOutputs<'_>) -> Result<R, LatencyError>,
    ) -> Result<R, LatencyError> {
        let input = Tensor::from_array((self.shape, self.image.clone()))
            .map_err(|e| LatencyError::Runtime(format!("onnxruntime input: {e}")))?;
        let outputs = self
            .session
            .run(ort::inputs![self.input_name.as_str() => input])
            .map_err(|e| LatencyError::Runtime(format!("onnxruntime run: {e}")))?;
        read(&outputs)
    }

    /// The first output of one run on the fixed input (the logits).
    pub fn logits(&mut self) -> Result<Vec<f32>, LatencyError> {
        self.run(|outputs| {
            let (_, values) = outputs[0]
                .try_extract_tensor::<f32>()
                .map_err(|e| LatencyError::Runtime(format!("onnxruntime output: {e}")))?;
            Ok(values.to_vec())
        })
    }
}

impl Inference for OrtInference {
    fn infer(&mut self) -> Result<(), LatencyError> {
        self.run(|outputs| {
            std::hint::black_box(outputs);
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_comes_from_the_build_string() {
        let info = "ORT Build Info: git-branch=HEAD, git-commit-id=fab30a4, build type=Release";
        assert_eq!(
            version_of("/venv/onnxruntime/capi/libonnxruntime.so.1.32.0", info),
            "1.32.0"
        );
        assert_eq!(
            version_of(
                "/opt/libonnxruntime.so",
                "ORT Build Info: git-branch=rel-1.20.1, x"
            ),
            "1.20.1"
        );
        assert_eq!(version_of("/opt/libonnxruntime.so", info), "unknown");
    }

    #[test]
    fn a_missing_library_names_the_path_tried() {
        let path = Path::new("/nonexistent/libonnxruntime.so.1.32.0");
        let e = load(path).expect_err("no such file");
        let text = e.to_string();
        assert!(
            text.contains("/nonexistent/libonnxruntime.so.1.32.0"),
            "{text}"
        );
    }

    #[test]
    fn the_flag_comes_before_the_environment() {
        let flag = Path::new("/opt/ort/libonnxruntime.so");
        assert_eq!(configured_path(Some(flag)).as_deref(), Some(flag));
    }
}
